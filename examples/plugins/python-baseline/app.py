"""A Sluice evaluator plugin in Python, built with componentize-py.

It judges a metric against the primary's value (a baseline): the canary
fails when it is worse than the primary by more than `maxIncrease` (a
fraction, from the metric's config, default 0.1), and when it is outside the
metric's threshold range. Without a baseline it cannot judge: inconclusive.

Build (from this directory):
    componentize-py -d ../../../wit -w evaluator componentize app -o baseline.wasm
"""

import json

from wit_world import exports
from wit_world.imports import evaluator_types as t
from wit_world.imports.log import Level, log
from componentize_py_types import Err


def max_increase(metric: t.Metric) -> float:
    if not metric.config:
        return 0.1
    try:
        value = json.loads(metric.config).get("maxIncrease", 0.1)
    except (ValueError, AttributeError):
        raise Err("invalid plugin config: expected a JSON object such as {\"maxIncrease\": 0.1}")
    if not isinstance(value, (int, float)) or value < 0:
        raise Err("invalid plugin config: maxIncrease must be a number of at least 0")
    return float(value)


class Judge(exports.Judge):
    def wants_baseline(self, metric: t.Metric) -> bool:
        return True

    def wants_series(self, metric: t.Metric):
        return None

    def evaluate(self, metric: t.Metric, samples: t.Samples) -> t.Verdict:
        limit = max_increase(metric)
        canary = samples.canary
        r = metric.threshold_range
        if r.max is not None and canary > r.max:
            return t.Verdict_Fail(f"{metric.name} {canary:g} > {r.max:g}")
        if r.min is not None and canary < r.min:
            return t.Verdict_Fail(f"{metric.name} {canary:g} < {r.min:g}")
        if samples.primary is None:
            return t.Verdict_Inconclusive(f"{metric.name}: no baseline from the primary")
        primary = samples.primary
        allowed = primary * (1 + limit) if primary >= 0 else primary * (1 - limit)
        log(Level.DEBUG, f"{metric.name}: canary {canary:g}, primary {primary:g}, allowed {allowed:g}")
        if canary > allowed:
            return t.Verdict_Fail(
                f"{metric.name} {canary:g} is more than {limit:.0%} above the primary's {primary:g}"
            )
        return t.Verdict_Pass()
