//! A Prometheus client for instant queries (`GET /api/v1/query`), one
//! number per metric per tick, and range queries (`GET
//! /api/v1/query_range`), the series statistical evaluators ask for.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;

use crate::http_client;

/// Flagger's Prometheus timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the client authenticates (from the MetricTemplate's secretRef).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    // Never print secrets, not even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Why a query gave no number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrometheusError {
    #[error("{address:?} is not a valid Prometheus address: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("{0}")]
    Client(String),
    #[error("Prometheus at {address} is unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("Prometheus at {address} did not answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("Prometheus at {address} answered HTTP {status}: {body}")]
    Status {
        address: String,
        status: u16,
        body: String,
    },
    #[error("Prometheus rejected the query ({error_type}): {message}; query: {query}")]
    BadQuery {
        error_type: String,
        message: String,
        query: String,
    },
    #[error("query returned {value}, not a number to compare; query: {query}")]
    NotFinite { value: String, query: String },
    #[error(
        "query returned {count} series, expected one (aggregate it, e.g. with sum()): {series}; query: {query}"
    )]
    SeveralSeries {
        count: usize,
        series: String,
        query: String,
    },
    #[error("query returned a {result_type}, expected {expected}; query: {query}")]
    WrongType {
        result_type: String,
        expected: String,
        query: String,
    },
    #[error("unexpected answer from Prometheus at {address}: {reason}")]
    BadResponse { address: String, reason: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// One series of a range query's matrix.
#[derive(Deserialize)]
struct RangeSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(serde_json::Value, String)>,
}

/// A client for one Prometheus server.
#[derive(Clone)]
pub struct PrometheusClient {
    address: String,
    query_url: url::Url,
    range_url: url::Url,
    http: reqwest::Client,
    credentials: Credentials,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl std::fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("address", &self.address)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl PrometheusClient {
    /// A client for `address` (e.g. `http://prometheus:9090`, or with a
    /// path prefix, `http://host/prometheus`), with its own HTTP client.
    pub fn new(
        address: &str,
        credentials: Credentials,
        timeout: Duration,
        insecure_skip_verify: bool,
    ) -> Result<Self, PrometheusError> {
        let http = http_client::client(timeout, insecure_skip_verify)
            .map_err(|e| PrometheusError::Client(http_client::chain(&e)))?;
        Self::with_http(http, address, credentials, timeout)
    }

    /// A client that shares `http` (connection pools, TLS settings) with
    /// others; `timeout` is only used for the error message, the HTTP
    /// client enforces its own.
    pub(crate) fn with_http(
        http: reqwest::Client,
        address: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Self, PrometheusError> {
        let invalid = |reason: String| PrometheusError::InvalidAddress {
            address: address.to_string(),
            reason,
        };
        let mut url = url::Url::parse(address.trim()).map_err(|e| invalid(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid("use an http:// or https:// URL".into()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host".into()));
        }
        // Like Flagger's path.Join: a path prefix is kept.
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_query(None);
        url.set_fragment(None);
        let mut range_url = url.clone();
        url.set_path(&format!("{prefix}/api/v1/query"));
        range_url.set_path(&format!("{prefix}/api/v1/query_range"));
        Ok(Self {
            address: address.trim().trim_end_matches('/').to_string(),
            query_url: url,
            range_url,
            http,
            credentials,
            headers: Vec::new(),
            timeout,
        })
    }

    /// Extra request headers (the MetricTemplate's `provider.headers`).
    pub(crate) fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs an instant query, at `time` or Prometheus's now. `Ok(None)`:
    /// the query selected no series. Whitespace is collapsed first, as
    /// Flagger does, so multi-line templates make short URLs.
    pub async fn query(
        &self,
        promql: &str,
        time: Option<Timestamp>,
    ) -> Result<Option<f64>, PrometheusError> {
        let query = collapse_whitespace(promql);
        let mut params = vec![("query", query.clone())];
        if let Some(t) = time {
            params.push(("time", unix_seconds(t)));
        }
        let (status, body) = self.get(&self.query_url, &params).await?;
        parse_response(&self.address, status, &body, &query)
    }

    /// Runs a range query: the query's values from `end - window` to `end`
    /// (or Prometheus's now when `end` is unset, read from this host's
    /// clock), one every `step`, oldest first. One series gives its values,
    /// no series an empty list, several an error naming them. A step
    /// without a value (NaN, e.g. a rate of 0/0 where no request came) is
    /// left out; ±Inf is an error, as for instant queries.
    pub async fn query_range(
        &self,
        promql: &str,
        end: Option<Timestamp>,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, PrometheusError> {
        let query = collapse_whitespace(promql);
        let end = end.unwrap_or_else(Timestamp::now);
        let start = jiff::SignedDuration::try_from(window)
            .ok()
            .and_then(|w| end.checked_sub(w).ok())
            .ok_or_else(|| {
                PrometheusError::Client(format!(
                    "a range query over {window:?} before {end} is out of range; query: {query}"
                ))
            })?;
        let step_ms = step.as_millis();
        if step_ms == 0 {
            return Err(PrometheusError::Client(format!(
                "a range query needs a step of at least 1ms; query: {query}"
            )));
        }
        let params = vec![
            ("query", query.clone()),
            ("start", unix_seconds(start)),
            ("end", unix_seconds(end)),
            ("step", step_seconds(step)),
        ];
        let (status, body) = self.get(&self.range_url, &params).await?;
        parse_range_response(&self.address, status, &body, &query)
    }

    /// GETs `url` with `params`, this client's headers and credentials:
    /// the answer's status and body.
    async fn get(
        &self,
        url: &url::Url,
        params: &[(&str, String)],
    ) -> Result<(u16, String), PrometheusError> {
        let mut request = self.http.get(url.clone()).query(params);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        request = match &self.credentials {
            Credentials::None => request,
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Credentials::Bearer(token) => request.bearer_auth(token),
        };
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                PrometheusError::Timeout {
                    address: self.address.clone(),
                    timeout: self.timeout,
                }
            } else {
                PrometheusError::Unreachable {
                    address: self.address.clone(),
                    reason: http_client::chain(&e.without_url()),
                }
            }
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| {
            if e.is_timeout() {
                PrometheusError::Timeout {
                    address: self.address.clone(),
                    timeout: self.timeout,
                }
            } else {
                PrometheusError::BadResponse {
                    address: self.address.clone(),
                    reason: format!("reading the body: {}", http_client::chain(&e)),
                }
            }
        })?;
        Ok((status.as_u16(), body))
    }

    /// Checks that Prometheus answers `vector(1)` with 1 (Flagger's
    /// `IsOnline`), for a clear error before the first analysis.
    pub async fn check_online(&self) -> Result<(), PrometheusError> {
        match self.query("vector(1)", None).await? {
            Some(1.0) => Ok(()),
            other => Err(PrometheusError::BadResponse {
                address: self.address.clone(),
                reason: format!("vector(1) returned {other:?}, not 1"),
            }),
        }
    }
}

/// A time as the API's `time` parameter: Unix seconds, with milliseconds.
fn unix_seconds(t: Timestamp) -> String {
    let ms = t.as_millisecond();
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        secs.to_string()
    } else {
        format!("{secs}.{frac:03}")
    }
}

/// A step as the API's `step` parameter: seconds, with milliseconds.
fn step_seconds(step: Duration) -> String {
    let ms = step.as_millis();
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

fn collapse_whitespace(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `data` of a successful API answer; Prometheus's own error, or what
/// went wrong on the way, otherwise.
fn response_data(
    address: &str,
    status: u16,
    body: &str,
    query: &str,
) -> Result<QueryData, PrometheusError> {
    let parsed: Option<ApiResponse> = serde_json::from_str(body).ok();
    if !(200..300).contains(&status) {
        // Prometheus answers bad PromQL with 400 and execution errors with
        // 422, both with its own message; anything else (a proxy's 502, an
        // auth gateway's 401) is reported with the body.
        return Err(match parsed {
            Some(ApiResponse {
                status: s,
                error_type: Some(error_type),
                error: Some(message),
                ..
            }) if s == "error" && (status == 400 || status == 422) => PrometheusError::BadQuery {
                error_type,
                message,
                query: query.to_string(),
            },
            _ => PrometheusError::Status {
                address: address.to_string(),
                status,
                body: http_client::excerpt(body, 300),
            },
        });
    }
    let bad = |reason: String| PrometheusError::BadResponse {
        address: address.to_string(),
        reason,
    };
    let response = parsed.ok_or_else(|| {
        bad(format!(
            "not a Prometheus API response: {}",
            http_client::excerpt(body, 200)
        ))
    })?;
    if response.status != "success" {
        return Err(PrometheusError::BadQuery {
            error_type: response.error_type.unwrap_or_else(|| "error".into()),
            message: response.error.unwrap_or_default(),
            query: query.to_string(),
        });
    }
    response
        .data
        .ok_or_else(|| bad("a successful answer without data".into()))
}

/// Interprets one `/api/v1/query` answer.
fn parse_response(
    address: &str,
    status: u16,
    body: &str,
    query: &str,
) -> Result<Option<f64>, PrometheusError> {
    let data = response_data(address, status, body, query)?;
    let bad = |reason: String| PrometheusError::BadResponse {
        address: address.to_string(),
        reason,
    };
    let value = match data.result_type.as_str() {
        "vector" => {
            let series: Vec<Series> = serde_json::from_value(data.result)
                .map_err(|e| bad(format!("malformed vector: {e}")))?;
            match series.len() {
                0 => return Ok(None),
                1 => series
                    .into_iter()
                    .next()
                    .map(|s| s.value.1)
                    .unwrap_or_default(),
                n => {
                    let shown: Vec<String> = series.iter().take(3).map(describe_series).collect();
                    let more = if n > 3 { ", …" } else { "" };
                    return Err(PrometheusError::SeveralSeries {
                        count: n,
                        series: format!("{}{more}", shown.join(", ")),
                        query: query.to_string(),
                    });
                }
            }
        }
        "scalar" => {
            let (_, v): (serde_json::Value, String) = serde_json::from_value(data.result)
                .map_err(|e| bad(format!("malformed scalar: {e}")))?;
            v
        }
        other => {
            return Err(PrometheusError::WrongType {
                result_type: if other == "matrix" {
                    "range vector (matrix)".into()
                } else {
                    other.to_string()
                },
                expected: "an instant vector or a scalar".into(),
                query: query.to_string(),
            });
        }
    };
    let number =
        parse_sample(&value).ok_or_else(|| bad(format!("sample {value:?} is not a number")))?;
    if !number.is_finite() {
        return Err(PrometheusError::NotFinite {
            value: value.clone(),
            query: query.to_string(),
        });
    }
    Ok(Some(number))
}

/// Interprets one `/api/v1/query_range` answer: the values of its one
/// series, oldest first, without NaN steps.
fn parse_range_response(
    address: &str,
    status: u16,
    body: &str,
    query: &str,
) -> Result<Vec<f64>, PrometheusError> {
    let data = response_data(address, status, body, query)?;
    let bad = |reason: String| PrometheusError::BadResponse {
        address: address.to_string(),
        reason,
    };
    if data.result_type != "matrix" {
        return Err(PrometheusError::WrongType {
            result_type: data.result_type,
            expected: "a range vector (matrix)".into(),
            query: query.to_string(),
        });
    }
    let mut series: Vec<RangeSeries> =
        serde_json::from_value(data.result).map_err(|e| bad(format!("malformed matrix: {e}")))?;
    let values = match series.len() {
        0 => return Ok(Vec::new()),
        1 => series.pop().map(|s| s.values).unwrap_or_default(),
        n => {
            let shown: Vec<String> = series
                .iter()
                .take(3)
                .map(|s| describe_labels(&s.metric))
                .collect();
            let more = if n > 3 { ", …" } else { "" };
            return Err(PrometheusError::SeveralSeries {
                count: n,
                series: format!("{}{more}", shown.join(", ")),
                query: query.to_string(),
            });
        }
    };
    let mut out = Vec::with_capacity(values.len());
    for (_, text) in values {
        let number =
            parse_sample(&text).ok_or_else(|| bad(format!("sample {text:?} is not a number")))?;
        if number.is_nan() {
            continue;
        }
        if number.is_infinite() {
            return Err(PrometheusError::NotFinite {
                value: text,
                query: query.to_string(),
            });
        }
        out.push(number);
    }
    Ok(out)
}

/// Prometheus writes samples as strings: "0.5", "NaN", "+Inf", "-Inf".
fn parse_sample(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn describe_series(s: &Series) -> String {
    describe_labels(&s.metric)
}

/// `name{label="value",…}`, as PromQL writes a series.
fn describe_labels(metric: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = metric
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let name = metric.get("__name__").cloned().unwrap_or_default();
    format!("{name}{{{}}}", labels.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Result<Option<f64>, PrometheusError> {
        parse_response("http://p:9090", status, body, "q")
    }

    #[test]
    fn one_sample_vector() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"99.25"]}]}}"#;
        assert_eq!(parse(200, body), Ok(Some(99.25)));
    }

    #[test]
    fn empty_vector_is_no_data() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse(200, body), Ok(None));
    }

    #[test]
    fn scalar() {
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(parse(200, body), Ok(Some(3.0)));
    }

    #[test]
    fn nan_and_inf_are_errors() {
        for v in ["NaN", "+Inf", "-Inf"] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{v}"]}}]}}}}"#
            );
            let e = parse(200, &body).unwrap_err();
            assert!(e.to_string().contains(v), "{e}");
            assert!(matches!(e, PrometheusError::NotFinite { .. }));
        }
    }

    #[test]
    fn several_series_name_them() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"a"},"value":[1,"1"]},
            {"metric":{"__name__":"up","job":"b"},"value":[1,"0"]}]}}"#;
        let e = parse(200, body).unwrap_err().to_string();
        assert!(e.contains("2 series"), "{e}");
        assert!(e.contains(r#"up{job="a"}"#), "{e}");
        assert!(e.contains("query: q"), "{e}");
    }

    #[test]
    fn bad_promql_keeps_prometheus_message() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
        let e = parse(400, body).unwrap_err().to_string();
        assert!(e.contains("bad_data"), "{e}");
        assert!(e.contains("parse error: unexpected end of input"), "{e}");
    }

    #[test]
    fn other_statuses_show_the_body() {
        let e = parse(502, "<html>bad gateway</html>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HTTP 502"), "{e}");
        assert!(e.contains("bad gateway"), "{e}");
    }

    #[test]
    fn matrix_is_refused() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let e = parse(200, body).unwrap_err().to_string();
        assert!(e.contains("range vector"), "{e}");
    }

    fn parse_range(status: u16, body: &str) -> Result<Vec<f64>, PrometheusError> {
        parse_range_response("http://p:9090", status, body, "q")
    }

    #[test]
    fn one_series_matrix_gives_its_values_in_order() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"a"},"values":[[1700000000,"1.5"],[1700000030,"NaN"],[1700000060,"2"],[1700000090,"0.25"]]}]}}"#;
        // The NaN step (no traffic) is left out.
        assert_eq!(parse_range(200, body), Ok(vec![1.5, 2.0, 0.25]));
    }

    #[test]
    fn empty_matrix_is_an_empty_series() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(parse_range(200, body), Ok(Vec::new()));
    }

    #[test]
    fn range_errors_name_the_query() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"a"},"values":[[1,"1"]]},
            {"metric":{"__name__":"up","job":"b"},"values":[[1,"0"]]}]}}"#;
        let e = parse_range(200, body).unwrap_err();
        assert!(
            matches!(e, PrometheusError::SeveralSeries { count: 2, .. }),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(
            e.contains(r#"up{job="b"}"#) && e.ends_with("query: q"),
            "{e}"
        );

        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"+Inf"]]}]}}"#;
        let e = parse_range(200, body).unwrap_err();
        assert!(matches!(e, PrometheusError::NotFinite { .. }), "{e:?}");
        assert!(e.to_string().contains("+Inf"), "{e}");

        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let e = parse_range(200, body).unwrap_err().to_string();
        assert!(
            e.contains("a vector, expected a range vector (matrix)"),
            "{e}"
        );

        let body = r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#;
        let e = parse_range(400, body).unwrap_err().to_string();
        assert!(e.contains("11,000 points") && e.contains("query: q"), "{e}");

        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}"#;
        let e = parse_range(200, body).unwrap_err().to_string();
        assert!(e.contains(r#"sample "x" is not a number"#), "{e}");
        let e = parse_range(502, "bad gateway").unwrap_err().to_string();
        assert!(e.contains("HTTP 502"), "{e}");
    }

    #[test]
    fn steps_as_seconds() {
        assert_eq!(step_seconds(Duration::from_secs(30)), "30");
        assert_eq!(step_seconds(Duration::from_millis(1500)), "1.500");
    }

    #[test]
    fn addresses() {
        let c = PrometheusClient::new(
            "http://h:9090/prom/",
            Credentials::None,
            DEFAULT_TIMEOUT,
            false,
        )
        .unwrap();
        assert_eq!(c.query_url.as_str(), "http://h:9090/prom/api/v1/query");
        assert_eq!(
            c.range_url.as_str(),
            "http://h:9090/prom/api/v1/query_range"
        );
        assert_eq!(c.address(), "http://h:9090/prom");
        for bad in ["", "prometheus:9090", "ftp://h", "http://"] {
            let e = PrometheusClient::new(bad, Credentials::None, DEFAULT_TIMEOUT, false);
            assert!(
                matches!(e, Err(PrometheusError::InvalidAddress { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn times_as_unix_seconds() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(unix_seconds(t), "1767225600");
        let t: Timestamp = "2026-01-01T00:00:00.25Z".parse().unwrap();
        assert_eq!(unix_seconds(t), "1767225600.250");
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!format!("{:?}", Credentials::Bearer("tok".into())).contains("tok"));
    }
}
