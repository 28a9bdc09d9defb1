//! Flagger's built-in metrics, `request-success-rate` and
//! `request-duration`, with Flagger's own PromQL.
//!
//! Flagger picks the queries by provider (`spec.provider`, or the
//! operator's mesh provider). For `gatewayapi` (and `kubernetes`) it uses
//! its HTTP observer (`pkg/metrics/observers/http.go`): the application's
//! own `http_request_duration_seconds` histogram, as podinfo exports it.
//! For Contour, the Envoy-based Gateway API implementation Flagger
//! supports, it uses Envoy's cluster statistics
//! (`pkg/metrics/observers/contour.go`). Both are here verbatim.
//!
//! Flagger compares `request-duration` in milliseconds (thresholdRange
//! `max: 500` means 500 ms), so [`Builtin::normalise`] converts what the
//! query returns into whole milliseconds, as Flagger's `time.Duration`
//! conversion does.

use crate::analysis::checks::MetricTarget;

/// Flagger's HTTP observer `request-success-rate` (percentage of non-5xx).
const HTTP_REQUEST_SUCCESS_RATE: &str = r#"
	sum(
		rate(
			http_request_duration_seconds_count{
				kubernetes_namespace="{{ namespace }}",
				kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
				status!~"5.*"
			}[{{ interval }}]
		)
	) 
	/ 
	sum(
		rate(
			http_request_duration_seconds_count{
				kubernetes_namespace="{{ namespace }}",
				kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
			}[{{ interval }}]
		)
	) 
	* 100"#;

/// Flagger's HTTP observer `request-duration` (P99, in seconds).
const HTTP_REQUEST_DURATION: &str = r#"
	histogram_quantile(
		0.99,
		sum(
			rate(
				http_request_duration_seconds_bucket{
					kubernetes_namespace="{{ namespace }}",
					kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
				}[{{ interval }}]
			)
		) by (le)
	)"#;

/// Flagger's Contour (Envoy) `request-success-rate`.
const ENVOY_REQUEST_SUCCESS_RATE: &str = r#"
	sum(
		rate(
			envoy_cluster_upstream_rq{
				envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",
				envoy_response_code!~"5.*"
			}[{{ interval }}]
		)
	) 
	/ 
	sum(
		rate(
			envoy_cluster_upstream_rq{
				envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",
			}[{{ interval }}]
		)
	) 
	* 100"#;

/// Flagger's Contour (Envoy) `request-duration` (P99, in milliseconds).
const ENVOY_REQUEST_DURATION: &str = r#"
	histogram_quantile(
		0.99,
		sum(
			rate(
				envoy_cluster_upstream_rq_time_bucket{
					envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+",
				}[{{ interval }}]
			)
		) by (le)
	)"#;

/// Which query family the built-in metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// The workload's own `http_request_duration_seconds` (Flagger's
    /// `gatewayapi` and `kubernetes` providers).
    Http,
    /// Envoy cluster statistics (Flagger's `contour` provider).
    Envoy,
}

/// A provider without built-in metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "builtin metrics are not available for provider {0:?} (Sluice has gatewayapi, kubernetes and contour); use a MetricTemplate"
)]
pub struct UnknownProvider(pub(crate) String);

impl Flavor {
    /// The flavor Flagger uses for a provider name, e.g. "gatewayapi:v1".
    pub(crate) fn for_provider(provider: &str) -> Result<Self, UnknownProvider> {
        let base = provider.split(':').next().unwrap_or(provider);
        match base {
            "" | "gatewayapi" | "kubernetes" => Ok(Self::Http),
            "contour" | "envoy" => Ok(Self::Envoy),
            other => Err(UnknownProvider(other.to_string())),
        }
    }
}

/// One built-in metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    RequestSuccessRate,
    RequestDuration,
}

impl Builtin {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "request-success-rate" => Some(Self::RequestSuccessRate),
            "request-duration" => Some(Self::RequestDuration),
            _ => None,
        }
    }

    /// Flagger's query template for this metric.
    fn template(self, flavor: Flavor) -> &'static str {
        match (self, flavor) {
            (Self::RequestSuccessRate, Flavor::Http) => HTTP_REQUEST_SUCCESS_RATE,
            (Self::RequestDuration, Flavor::Http) => HTTP_REQUEST_DURATION,
            (Self::RequestSuccessRate, Flavor::Envoy) => ENVOY_REQUEST_SUCCESS_RATE,
            (Self::RequestDuration, Flavor::Envoy) => ENVOY_REQUEST_DURATION,
        }
    }

    /// The template for `target`. The HTTP queries select pods by the
    /// target's name, which the renderer sets to `<target>-primary` for the
    /// primary; the Envoy queries name the canary Service's cluster, so for
    /// the primary they name the primary Service's.
    pub(crate) fn template_for(self, flavor: Flavor, target: MetricTarget) -> String {
        let t = self.template(flavor);
        match (flavor, target) {
            (Flavor::Envoy, MetricTarget::Primary) => {
                t.replace("{{ service }}-canary_", "{{ service }}-primary_")
            }
            _ => t.to_string(),
        }
    }

    /// The query's value in the unit Flagger compares thresholds in:
    /// percent for the success rate, whole milliseconds for the duration.
    pub(crate) fn normalise(self, flavor: Flavor, value: f64) -> f64 {
        match (self, flavor) {
            (Self::RequestSuccessRate, _) => value,
            (Self::RequestDuration, Flavor::Http) => (value * 1000.0).trunc(),
            (Self::RequestDuration, Flavor::Envoy) => value.trunc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_map_like_flagger() {
        assert_eq!(Flavor::for_provider("gatewayapi:v1"), Ok(Flavor::Http));
        assert_eq!(Flavor::for_provider("gatewayapi"), Ok(Flavor::Http));
        assert_eq!(Flavor::for_provider("kubernetes"), Ok(Flavor::Http));
        assert_eq!(Flavor::for_provider("contour"), Ok(Flavor::Envoy));
        let e = Flavor::for_provider("istio").unwrap_err().to_string();
        assert!(e.contains("MetricTemplate"), "{e}");
    }

    #[test]
    fn primary_envoy_query_names_the_primary_cluster() {
        let q = Builtin::RequestSuccessRate.template_for(Flavor::Envoy, MetricTarget::Primary);
        assert!(q.contains("{{ service }}-primary_"));
        assert!(!q.contains("-canary_"));
        let q = Builtin::RequestDuration.template_for(Flavor::Http, MetricTarget::Primary);
        assert_eq!(q, HTTP_REQUEST_DURATION);
    }

    #[test]
    fn durations_become_whole_milliseconds() {
        assert_eq!(
            Builtin::RequestDuration.normalise(Flavor::Http, 0.2346),
            234.0
        );
        assert_eq!(
            Builtin::RequestDuration.normalise(Flavor::Envoy, 234.9),
            234.0
        );
        assert_eq!(
            Builtin::RequestSuccessRate.normalise(Flavor::Http, 99.5),
            99.5
        );
    }
}
