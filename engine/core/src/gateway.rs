//! What an HTTPRoute match may contain: methods, header names, bounded
//! regular expressions, the path pseudo-header of a plan, retry codes.

use thiserror::Error;

/// The methods a Gateway API HTTPRoute matches.
pub const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The pseudo-header that carries an exact or regular-expression path
/// condition in a plan's match.
pub const PATH_PSEUDO_HEADER: &str = ":path";

/// The longest regular expression a match may carry, in bytes.
const MAX_REGEX_BYTES: usize = 1024;
/// The most a compiled match regex may take (program and lazy DFA); a
/// pattern over it is refused at once instead of compiling for seconds.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// The deepest a regex may nest groups and repetitions.
const REGEX_NEST_LIMIT: u32 = 32;

/// Why a match regex is refused.
#[derive(Debug, Error)]
pub enum RegexError {
    #[error("regex of {0} bytes is longer than {MAX_REGEX_BYTES}")]
    TooLong(usize),
    #[error(
        "regex {preview:?} is too complex: it compiles to more than {limit} bytes; simplify it"
    )]
    TooComplex { preview: String, limit: usize },
    #[error("invalid regex {preview:?}: {source}")]
    Invalid {
        preview: String,
        #[source]
        source: regex::Error,
    },
}

/// Compiles a match regex within fixed bounds (length, nesting, compiled
/// size), so that neither a Canary nor a plugin can make the host spend
/// more than a few milliseconds on it. The `regex` crate matches in linear
/// time, so a compiled regex is safe to run on any input.
pub fn bounded_regex(re: &str) -> Result<regex::Regex, RegexError> {
    if re.len() > MAX_REGEX_BYTES {
        return Err(RegexError::TooLong(re.len()));
    }
    regex::RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => RegexError::TooComplex {
                preview: preview(re),
                limit,
            },
            source => RegexError::Invalid {
                preview: preview(re),
                source,
            },
        })
}

/// The first 64 characters of `s`, for messages.
fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(64).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

/// RFC 7230 token characters.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Istio-style `retryOn` conditions (Flagger's) as the HTTP status codes
/// Gateway API retries on. Connection-level conditions (`connect-failure`,
/// `reset`, `refused-stream`) have no code: Gateway API leaves retrying
/// them to the implementation.
pub fn retry_codes(retry_on: &str) -> Vec<i64> {
    let mut codes = Vec::new();
    for token in retry_on.split(',').map(str::trim) {
        let add: &[i64] = match token {
            "5xx" => &[500, 502, 503, 504],
            "gateway-error" => &[502, 503, 504],
            "retriable-4xx" => &[409],
            other => match other.parse::<i64>() {
                Ok(code) => {
                    codes.push(code);
                    &[]
                }
                Err(_) => &[],
            },
        };
        codes.extend_from_slice(add);
    }
    codes.sort_unstable();
    codes.dedup();
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_over_the_bounds_are_refused_with_the_reason() {
        let long = "a".repeat(MAX_REGEX_BYTES + 1);
        assert!(matches!(bounded_regex(&long), Err(RegexError::TooLong(n)) if n == long.len()));
        let huge = "(a{1000}){1000}";
        let err = bounded_regex(huge).unwrap_err();
        assert!(err.to_string().contains("too complex"), "{err}");
        let err = bounded_regex("(unclosed").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid regex \"(unclosed\""),
            "{err}"
        );
        assert!(bounded_regex("^/api/v[0-9]+$").is_ok());
    }

    #[test]
    fn retry_conditions_become_codes() {
        assert_eq!(retry_codes("5xx, 409,reset"), [409, 500, 502, 503, 504]);
        assert!(retry_codes("connect-failure").is_empty());
    }
}
