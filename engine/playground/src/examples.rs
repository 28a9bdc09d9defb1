//! The Canary and MetricTemplate the live rollouts use: the guide's
//! weighted Canary on Contour's provider (Flagger's `contour` built-in
//! metrics read Envoy's statistics), with a custom Envoy query.

use sluice_api::MetricTemplate;

use crate::PlaygroundError;

/// The guide's weighted Canary (`podinfo` in `test`, 10% steps up to 50%)
/// with `spec.provider: contour`, analysed every `interval` (a Go
/// duration, e.g. "2s") on `request-success-rate` (min 99%),
/// `request-duration` (max 500 ms) and the [`envoy_5xx_template`] (max
/// 1%), each over `window`; rolled back after `threshold` failed checks.
/// `webhooks` are the items of `analysis.webhooks`, as a YAML flow
/// sequence's content ("" for none).
pub fn contour_canary(interval: &str, window: &str, threshold: u32, webhooks: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: contour
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  progressDeadlineSeconds: 60
  service:
    port: 9898
    targetPort: 9898
    hosts:
      - www.example.com
    gatewayRefs:
      - name: contour
        namespace: projectcontour
  analysis:
    interval: {interval}
    threshold: {threshold}
    maxWeight: 50
    stepWeight: 10
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: {window}
      - name: request-duration
        thresholdRange:
          max: 500
        interval: {window}
      - name: envoy-5xx-percent
        templateRef:
          name: envoy-5xx-percent
          namespace: test
        thresholdRange:
          max: 1
        interval: {window}
    webhooks: [{webhooks}]
"#
    )
}

/// The MetricTemplate `test/envoy-5xx-percent`: the percentage of the
/// canary's answers Envoy counted as 5xx (its `upstream_rq_xx`
/// statistics, by Contour's cluster name), 0 when there were none, on the
/// Prometheus at `prometheus`.
pub fn envoy_5xx_template(prometheus: &str) -> Result<MetricTemplate, PlaygroundError> {
    let yaml = format!(
        r#"apiVersion: sluice.dev/v1beta1
kind: MetricTemplate
metadata:
  name: envoy-5xx-percent
  namespace: test
spec:
  provider:
    type: prometheus
    address: {prometheus}
  query: |
    100 * (
      sum(rate(envoy_cluster_upstream_rq_xx{{envoy_cluster_name=~"{{{{ namespace }}}}_{{{{ target }}}}-canary_[0-9]+",envoy_response_code_class="5"}}[{{{{ interval }}}}]))
      or on() vector(0)
    )
    /
    sum(rate(envoy_cluster_upstream_rq_xx{{envoy_cluster_name=~"{{{{ namespace }}}}_{{{{ target }}}}-canary_[0-9]+"}}[{{{{ interval }}}}]))
"#
    );
    sluice_api::load::metric_templates_from_yaml(&yaml)
        .map_err(|e| PlaygroundError::Canary(e.to_string()))?
        .pop()
        .ok_or_else(|| PlaygroundError::Canary("no MetricTemplate".into()))
}
