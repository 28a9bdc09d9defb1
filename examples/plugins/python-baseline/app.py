"""A Sluice evaluator plugin in Python, built with componentize-py.

It judges a metric against the primary's value (a baseline): the canary
fails when it is worse than the primary by more than `maxIncrease` (a
fraction, from the metric's config, default 0.1), and when it is outside the
metric's threshold range. Without a baseline it cannot judge yet: it answers
needs-more-data, which holds the rollout without a failed check.

It targets the contract sluice:plugin@0.2.0, world `validated-evaluator`:
the `judge` interface (`requirements`, `evaluate`) and the `settings`
interface, whose `validate-config` refuses a bad `maxIncrease` when the
Canary changes, before it is used.

Build (from this directory):
    componentize-py -d ../../../wit/v0.2 -w validated-evaluator componentize app -o baseline.wasm
"""

import json

from wit_world import exports
from wit_world.imports import evaluator_types as t
from wit_world.imports.log import Level, log
from componentize_py_types import Err


def max_increase(config: str) -> float:
    """The `maxIncrease` setting; raises Err with the reason when it is bad."""
    if not config:
        return 0.1
    try:
        value = json.loads(config).get("maxIncrease", 0.1)
    except (ValueError, AttributeError):
        raise Err("invalid plugin config: expected a JSON object such as {\"maxIncrease\": 0.1}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise Err("invalid plugin config: maxIncrease must be a number of at least 0")
    return float(value)


class Settings(exports.Settings):
    def validate_config(self, config: str) -> None:
        max_increase(config)


class Judge(exports.Judge):
    def requirements(self, metric: t.Metric) -> t.MetricRequirements:
        # The primary's value, no series.
        return t.MetricRequirements(baseline=True, series=None)

    def evaluate(self, metric: t.Metric, samples: t.Samples) -> t.Verdict:
        limit = max_increase(metric.config)
        canary = samples.canary
        r = metric.threshold_range
        if r.max is not None and canary > r.max:
            return t.Verdict_Fail(f"{metric.name} {canary:g} > {r.max:g}")
        if r.min is not None and canary < r.min:
            return t.Verdict_Fail(f"{metric.name} {canary:g} < {r.min:g}")
        if samples.primary is None:
            return t.Verdict_NeedsMoreData(f"{metric.name}: no baseline from the primary yet")
        primary = samples.primary
        allowed = primary * (1 + limit) if primary >= 0 else primary * (1 - limit)
        log(Level.DEBUG, f"{metric.name}: canary {canary:g}, primary {primary:g}, allowed {allowed:g}")
        if canary > allowed:
            return t.Verdict_Fail(
                f"{metric.name} {canary:g} is more than {limit:.0%} above the primary's {primary:g}"
            )
        return t.Verdict_Pass()
