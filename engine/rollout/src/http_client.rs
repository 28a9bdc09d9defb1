//! What the outbound HTTP clients (Prometheus, webhooks, alerts) share.
//!
//! reqwest is built with rustls but without a crypto provider (its default
//! would pull in aws-lc, a C build); Sluice uses ring, as kube does, and
//! installs it as the process default before building any client.

use std::time::Duration;

pub use crate::error::chain;

/// A reqwest client builder, with ring installed as rustls's provider.
pub(crate) fn builder() -> reqwest::ClientBuilder {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
}

/// Builds a client with a per-request `timeout`, optionally accepting any
/// TLS certificate (`insecureSkipVerify`, `disableTLS`).
pub fn client(timeout: Duration, insecure: bool) -> Result<reqwest::Client, reqwest::Error> {
    builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .tls_danger_accept_invalid_certs(insecure)
        .build()
}

/// At most `max` characters of a response body, on one line, for errors.
pub(crate) fn excerpt(body: &str, max: usize) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_flat() {
        assert_eq!(excerpt("a\n  b", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }

    #[test]
    fn clients_build() {
        client(Duration::from_secs(1), true).unwrap();
        client(Duration::from_secs(1), false).unwrap();
    }
}
