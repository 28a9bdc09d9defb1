// A Sluice evaluator plugin in JavaScript, built with componentize-js.
//
// It judges a metric against its threshold range, as Flagger does, and
// refuses values outside an optional absolute band from the metric's config
// ({"band": [low, high]}). Neither a baseline nor series are needed.
//
// It targets the contract sluice:plugin@0.2.0, world `evaluator`: only the
// `judge` interface. The `settings` export (`validate-config`) is optional
// and this plugin leaves it out (world `validated-evaluator` would add it):
// a bad band is reported when a metric is evaluated.
//
// Build (from this directory; the default build imports wasi:http, which
// Sluice does not give plugins):
//   componentize-js threshold.js --wit ../../../wit/v0.2 --world-name evaluator \
//     --disable http fetch-event -o threshold.wasm

import { log } from "sluice:plugin/log@0.2.0";

function band(metric) {
  if (!metric.config) return null;
  let parsed;
  try {
    parsed = JSON.parse(metric.config);
  } catch (e) {
    throw `invalid plugin config: ${e}`;
  }
  if (parsed.band === undefined) return null;
  const b = parsed.band;
  if (!Array.isArray(b) || b.length !== 2 || b.some((x) => typeof x !== "number")) {
    throw "invalid plugin config: band must be [low, high]";
  }
  return b;
}

export const judge = {
  // The canary's instant value only: no baseline, no series.
  requirements(_metric) {
    return { baseline: false, series: undefined };
  },

  evaluate(metric, samples) {
    const value = samples.canary;
    const { min, max } = metric.thresholdRange;
    log("debug", `${metric.name}: ${value}`);
    if (max !== undefined && value > max) {
      return { tag: "fail", val: `${metric.name} ${value} > ${max}` };
    }
    if (min !== undefined && value < min) {
      return { tag: "fail", val: `${metric.name} ${value} < ${min}` };
    }
    const b = band(metric);
    if (b && (value < b[0] || value > b[1])) {
      return { tag: "fail", val: `${metric.name} ${value} is outside [${b[0]}, ${b[1]}]` };
    }
    return { tag: "pass" };
  },
};
