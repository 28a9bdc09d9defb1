//! Go-style durations ("30s", "1m", "1h30m", "500ms"), as Flagger and
//! Kubernetes users write them.
//!
//! [`parse`] accepts exactly Go's `time.ParseDuration` grammar: an optional
//! sign, then one or more numbers (decimal fractions allowed, on any of
//! them: `1.5h`, `.5s`, `5.s`) each followed by a unit `ns`, `us`, `µs`,
//! `μs`, `ms`, `s`, `m` or `h`, in any order (`10.5s4m`), with no spaces and
//! no days; or a bare `0`. The parsing is the `go-duration` crate's; this
//! module adds only Go's bare-zero case, refuses negative durations, and
//! turns its errors into [`DurationError`]s that name the input.
//!
//! Why `go-duration`: it is the crate whose grammar is Go's. Checked against
//! the table of Go's own `time` tests (`parseDurationTests` and
//! `parseDurationErrorTests`), it differs only on the bare `0` (handled
//! here) and by at most 1ns on fractions longer than Go's float64 keeps
//! exact (`0.3333333333333333333h`). The others refuse valid Go or accept
//! what Go refuses: `humantime` has no signs, no `.5s`/`5.s`, no `μs`
//! (U+03BC), no fractions past 1ns, and accepts spaces, days, weeks, `sec`,
//! `hours` and values past Go's range; `jiff`'s friendly format (which the
//! workspace already has) wants descending units with a fraction only on
//! the last one, refuses `0`, `.5s`, `5.s`, `10.5s4m`, and accepts spaces,
//! `1 hour`, `1m ago` and ISO 8601 (`PT1M`); `go-parse-duration` (0.1.1)
//! panics on `µs`, loops forever on Go's `0.100000000000000000000h`
//! and refuses values from 2^62ns. `go-duration` is small and young (0.2.0,
//! 2025, on `nom` 8): if it ever goes stale, Go's grammar is this module's
//! tests.
//!
//! The formatting is Go's too: [`format_go`] is `time.Duration.String()`
//! (`go-duration`'s `Display`); [`prometheus_range`] is the compact form of
//! PromQL range selectors, which no crate here writes.

use std::time::Duration;

use go_duration::{GoDuration, GoDurationParseError, parse_go_duration};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid duration {input:?}: {reason} (use Go syntax such as \"30s\", \"1m\", \"1h30m\")")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses a Go duration string. Negative durations are refused: nothing in
/// a Canary can be negative (`-0s` is zero, as in Go, and is accepted).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(err("empty"));
    }
    if input.contains(char::is_whitespace) {
        return Err(err("spaces are not allowed"));
    }
    // Go's one unit-less form: a bare zero, signed or not.
    if input.strip_prefix(['+', '-']).unwrap_or(input) == "0" {
        return Ok(Duration::ZERO);
    }
    let nanos = parse_go_duration(input)
        .map_err(|e| {
            err(match e {
                GoDurationParseError::MissingUnit => "missing unit (valid: ns, us, ms, s, m, h)",
                GoDurationParseError::UnknownUnit(_) => {
                    "unknown unit (valid: ns, us, ms, s, m, h; for days write 24h)"
                }
                GoDurationParseError::InvalidDuration => {
                    "expected a number before each unit, and at most 2562047h47m16.854775807s"
                }
            })
        })?
        .nanoseconds();
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| err("negative"))
}

/// Formats a duration the way Go's `time.Duration.String()` does ("1m0s",
/// "1.5s", "500ms", "1h0m0s"); a duration past Go's range (about 292 years)
/// is written as Go's largest. For PromQL range selectors, see
/// [`prometheus_range`].
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "no caller outside this module's tests yet; kept as the documented inverse of `parse`"
    )
)]
fn format_go(d: Duration) -> String {
    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    GoDuration(nanos).to_string()
}

/// A compact form for PromQL range selectors: "1m", "30s", "1h30m".
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "no caller outside this module's tests; kept for PromQL range selectors"
    )
)]
fn prometheus_range(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1;
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;
    const MAX: u64 = i64::MAX as u64;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    /// The non-negative cases of Go's `parseDurationTests` (src/time/time_test.go),
    /// and a few more that Go accepts.
    #[test]
    fn accepts_what_go_accepts() {
        for (input, nanos) in [
            // simple
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            // sign
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("-0s", 0),
            // decimal
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            // different units
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12µs", 12 * US), // U+00B5
            ("12μs", 12 * US), // U+03BC
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            // composite durations
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            // units in any order, repeated, fractions on any of them
            ("30m1h", H + 30 * M),
            ("1h1h", 2 * H),
            ("1.5h30m", 2 * H),
            // large value
            ("52763797000ns", 52763797000 * NS),
            // 1<<53+1 cannot be stored precisely in a float64
            ("9007199254740993ns", (1 << 53) + 1),
            // largest duration that can be represented by int64 in nanoseconds
            ("9223372036854775807ns", MAX),
            ("9223372036854775.807us", MAX),
            ("9223372036s854ms775us807ns", MAX),
            ("2562047h47m16.854775807s", MAX),
            // huge string; Go issue 15011
            ("0.100000000000000000000h", 6 * M),
            // the first overflow check in Go's leadingFraction
            ("0.830103483285477580700h", 49 * M + 48 * S + 372539827),
        ] {
            assert_eq!(parse(input), Ok(Duration::from_nanos(nanos)), "{input:?}");
        }
        // More than 9 digits after the point (Go issue 6617): Go gets 20m
        // exactly; go-duration's float sum may be 1ns short.
        let d = parse("0.3333333333333333333h").unwrap();
        assert!(
            Duration::from_secs(1200) - d <= Duration::from_nanos(1),
            "{d:?}"
        );
    }

    /// Go's `parseDurationErrorTests`, and more inputs Go refuses.
    #[test]
    fn refuses_what_go_refuses() {
        for input in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{85}\u{85}",
            "\u{FFFD}",
            "\u{FFFD} hello \u{FFFD} world",
            // overflow
            "9223372036854775810ns",
            "9223372036854775808ns",
            "9223372036854776us",
            "3000000h",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "18446744073709551616ns",
            // no spaces, no days or weeks, no long unit names, no exponents
            " 30s",
            "30s ",
            "1h 30m",
            "1 h",
            "1w",
            "1day",
            "1sec",
            "1hour",
            "1e3s",
            "1S",
            "1H",
            "PT1M",
            "1m ago",
            // a sign only at the start
            "1m-30s",
            "1m+30s",
            "+-1s",
            "--1s",
            "1",
            "10x",
            "m",
            "1m-",
            "abc",
            "0s0",
            "00",
        ] {
            let e = parse(input).expect_err(input);
            assert_eq!(e.input, input);
            assert!(e.to_string().contains(&format!("{input:?}")), "{e}");
        }
    }

    /// Go accepts negative durations; nothing in a Canary may be one.
    #[test]
    fn refuses_negative_durations() {
        for input in [
            "-5s",
            "-1ns",
            "-2m3.4s",
            "-9223372036854775808ns",
            "-2562047h47m16.854775808s",
        ] {
            assert_eq!(parse(input).unwrap_err().reason, "negative", "{input:?}");
        }
    }

    #[test]
    fn errors_say_why() {
        let reason = |input| parse(input).unwrap_err().reason;
        assert_eq!(reason(""), "empty");
        assert!(reason("10x").starts_with("unknown unit"));
        assert!(reason("1d").contains("24h"));
        assert!(reason("10").starts_with("missing unit"));
        assert!(reason("1h 30m").contains("spaces"));
        assert!(reason("3000000h").contains("at most"));
        assert!(reason(".s").contains("number"));
        assert_eq!(
            parse("10x").unwrap_err().to_string(),
            "invalid duration \"10x\": unknown unit (valid: ns, us, ms, s, m, h; for days \
             write 24h) (use Go syntax such as \"30s\", \"1m\", \"1h30m\")"
        );
    }

    /// Go's `durationTests` for `Duration.String()`, and a round trip.
    #[test]
    fn formats_like_go() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1100, "1.1µs"),
            (2200 * US, "2.2ms"),
            (3300 * MS, "3.3s"),
            (4 * M + 5 * S, "4m5s"),
            (4 * M + 5001 * MS, "4m5.001s"),
            (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
            (8 * M + 1, "8m0.000000001s"),
            (MAX, "2562047h47m16.854775807s"),
            (60 * S, "1m0s"),
            (1500 * MS, "1.5s"),
            (500 * MS, "500ms"),
            (H, "1h0m0s"),
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(format_go(d), text, "{nanos}");
            assert_eq!(parse(text), Ok(d), "{text}");
        }
        assert_eq!(format_go(Duration::MAX), "2562047h47m16.854775807s");
    }

    #[test]
    fn prometheus_ranges() {
        assert_eq!(prometheus_range(Duration::from_secs(60)), "1m");
        assert_eq!(prometheus_range(Duration::from_secs(90)), "1m30s");
        assert_eq!(prometheus_range(Duration::from_secs(5400)), "1h30m");
        assert_eq!(prometheus_range(Duration::from_millis(500)), "500ms");
    }
}
