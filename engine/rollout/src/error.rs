//! What the engine's error types share: a boxed source from a provider,
//! and one-line rendering of an error with its causes.

/// An error a provider of the engine (metrics, webhooks, a cluster) hands
/// back, kept whole as the source of the engine's own errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with its causes, "a: b: c": reqwest's top-level message alone
/// ("error sending request") hides the reason (connection refused, DNS).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}
