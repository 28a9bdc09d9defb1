//! An example statistical evaluator for Sluice: a Mann-Whitney U test of
//! the canary's series of samples against the primary's, as Kayenta's
//! canary judge does, instead of a fixed threshold.
//!
//! The evaluator asks the host for the primary's values (`wants_baseline`)
//! and for a series of both over a window (`wants_series`), then tests
//! whether the canary's samples tend to be higher (or lower) than the
//! primary's. The test is rank-based: it assumes no distribution, only that
//! the samples of each side are independent draws, which suits latencies
//! and error rates, whose distributions are skewed and change with load.
//!
//! Settings, from the metric's `evaluatorConfig` (passed as JSON):
//!
//! ```json
//! {"direction": "increase", "alpha": 0.05, "minSamples": 10,
//!  "windowSeconds": 600, "stepSeconds": 30}
//! ```
//!
//! - `direction`: which change fails the check: `increase` (the canary is
//!   higher: latency, errors), `decrease` (lower: success rate, throughput)
//!   or `either` (default).
//! - `alpha`: the significance level, in (0, 1); default 0.05.
//! - `minSamples`: fewer samples on either side is inconclusive (which
//!   counts as a failed check); default 10, at least 3.
//! - `windowSeconds` / `stepSeconds`: the series asked for, default the
//!   last 10 minutes every 30 seconds (21 samples).
//!
//! The p-value uses the normal approximation with the tie correction and a
//! continuity correction, as SciPy's `mannwhitneyu(method="asymptotic")`
//! and R's `wilcox.test(exact = FALSE)` compute it.

use sluice_plugin_sdk::config::Config;
use sluice_plugin_sdk::evaluator::{
    Evaluator, Level, Metric, Samples, SeriesRequest, Verdict, log,
};

pub struct MannWhitney;

impl Evaluator for MannWhitney {
    /// The test compares the canary with the primary: it always needs both.
    fn wants_baseline(_metric: &Metric) -> bool {
        true
    }

    /// The window of the settings; with settings that do not parse, the
    /// default window (`evaluate` then reports the settings' error).
    fn wants_series(metric: &Metric) -> Option<SeriesRequest> {
        let settings = Settings::parse(&metric.config).unwrap_or_default();
        Some(SeriesRequest {
            window_seconds: settings.window_seconds,
            step_seconds: settings.step_seconds,
        })
    }

    fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String> {
        let settings =
            Settings::parse(&metric.config).map_err(|e| format!("metric {}: {e}", metric.name))?;
        Ok(judge(
            &metric.name,
            &settings,
            &samples.canary_series,
            &samples.primary_series,
        ))
    }
}

sluice_plugin_sdk::export_evaluator!(MannWhitney);

/// Which change of the canary fails the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The canary's values are higher than the primary's.
    Increase,
    /// The canary's values are lower.
    Decrease,
    /// Either way (a two-sided test).
    Either,
}

/// The evaluator's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub direction: Direction,
    pub alpha: f64,
    pub min_samples: u32,
    pub window_seconds: u32,
    pub step_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            direction: Direction::Either,
            alpha: 0.05,
            min_samples: 10,
            window_seconds: 600,
            step_seconds: 30,
        }
    }
}

/// The most samples the host serves in one series.
const MAX_SERIES_POINTS: u64 = 11_000;

impl Settings {
    /// Reads and checks the `config` string; empty means the defaults.
    pub fn parse(config: &str) -> Result<Settings, String> {
        let config = Config::parse(config)?;
        let defaults = Settings::default();
        let direction = match config.get_str("direction")? {
            None => defaults.direction,
            Some("increase") => Direction::Increase,
            Some("decrease") => Direction::Decrease,
            Some("either") => Direction::Either,
            Some(other) => {
                return Err(format!(
                    "invalid plugin config: \"direction\" must be \"increase\", \"decrease\" or \"either\", got {other:?}"
                ));
            }
        };
        let alpha = config.get_f64("alpha")?.unwrap_or(defaults.alpha);
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(format!(
                "invalid plugin config: \"alpha\" must be between 0 and 1 (exclusive), got {alpha}"
            ));
        }
        let min_samples = config
            .get_u32("minSamples")?
            .unwrap_or(defaults.min_samples);
        if min_samples < 3 {
            return Err(format!(
                "invalid plugin config: \"minSamples\" must be at least 3, got {min_samples} (the normal approximation needs about 8 or more)"
            ));
        }
        let window_seconds = config
            .get_u32("windowSeconds")?
            .unwrap_or(defaults.window_seconds);
        let step_seconds = config
            .get_u32("stepSeconds")?
            .unwrap_or(defaults.step_seconds);
        if step_seconds == 0 || window_seconds < step_seconds {
            return Err(format!(
                "invalid plugin config: \"stepSeconds\" must be at least 1 and at most \"windowSeconds\" (got {step_seconds} and {window_seconds})"
            ));
        }
        let points = u64::from(window_seconds / step_seconds) + 1;
        if points > MAX_SERIES_POINTS {
            return Err(format!(
                "invalid plugin config: a {window_seconds}s window every {step_seconds}s is {points} samples; the host serves at most {MAX_SERIES_POINTS}"
            ));
        }
        if points < u64::from(min_samples) {
            return Err(format!(
                "invalid plugin config: a {window_seconds}s window every {step_seconds}s holds at most {points} samples, fewer than \"minSamples\" ({min_samples})"
            ));
        }
        Ok(Settings {
            direction,
            alpha,
            min_samples,
            window_seconds,
            step_seconds,
        })
    }
}

/// The verdict on one metric's series.
pub fn judge(name: &str, settings: &Settings, canary: &[f64], primary: &[f64]) -> Verdict {
    let min = settings.min_samples as usize;
    if canary.len() < min || primary.len() < min {
        return Verdict::Inconclusive(format!(
            "{name}: too few samples for a Mann-Whitney test (canary {}, primary {}; minSamples {min})",
            canary.len(),
            primary.len()
        ));
    }
    let test = UTest::new(canary, primary);
    let (alternative, p) = match settings.direction {
        Direction::Increase => (Alternative::Greater, test.p_value(Alternative::Greater)),
        Direction::Decrease => (Alternative::Less, test.p_value(Alternative::Less)),
        Direction::Either => {
            let side = if test.u_canary >= test.mean() {
                Alternative::Greater
            } else {
                Alternative::Less
            };
            (side, test.p_value(Alternative::TwoSided))
        }
    };
    log(
        Level::Debug,
        &format!(
            "mann-whitney: {name}: canary median {} (n={}), primary median {} (n={}), U={}, p={}",
            median(canary),
            canary.len(),
            median(primary),
            primary.len(),
            test.u_canary,
            p
        ),
    );
    if p < settings.alpha {
        let change = match alternative {
            Alternative::Less => "lower",
            _ => "higher",
        };
        Verdict::Fail(format!(
            "{name}: canary is {change} than primary (Mann-Whitney U={}, p={} < {})",
            test.u_canary,
            format_p(p, settings.alpha),
            settings.alpha
        ))
    } else {
        Verdict::Pass
    }
}

/// What the test asks of the canary's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    /// They tend to be higher than the primary's.
    Greater,
    /// They tend to be lower.
    Less,
    /// They differ, either way.
    TwoSided,
}

/// The Mann-Whitney U statistic of two samples, and what the normal
/// approximation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct UTest {
    /// Samples of the canary and of the primary.
    pub n_canary: usize,
    pub n_primary: usize,
    /// The canary's U: the pairs (canary, primary) where the canary's value
    /// is higher, ties counting one half.
    pub u_canary: f64,
    /// Σ (t³ - t) over groups of t tied values, for the tie correction.
    pub ties: f64,
}

impl UTest {
    /// Ranks both samples together (ties get their average rank) and sums
    /// the canary's ranks.
    pub fn new(canary: &[f64], primary: &[f64]) -> UTest {
        let mut all: Vec<(f64, bool)> = canary
            .iter()
            .map(|&v| (v, true))
            .chain(primary.iter().map(|&v| (v, false)))
            .collect();
        // total_cmp: no panic, whatever the input.
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut rank_sum = 0.0;
        let mut ties = 0.0;
        let mut i = 0;
        while i < all.len() {
            let mut j = i + 1;
            while j < all.len() && all[j].0 == all[i].0 {
                j += 1;
            }
            // Positions i..j (0-based) share ranks i+1..=j: their average.
            let average = (i + 1 + j) as f64 / 2.0;
            let in_canary = all[i..j].iter().filter(|(_, c)| *c).count();
            rank_sum += average * in_canary as f64;
            let t = (j - i) as f64;
            ties += t * t * t - t;
            i = j;
        }
        let n1 = canary.len() as f64;
        UTest {
            n_canary: canary.len(),
            n_primary: primary.len(),
            u_canary: rank_sum - n1 * (n1 + 1.0) / 2.0,
            ties,
        }
    }

    /// The primary's U (the two add up to n₁n₂).
    pub fn u_primary(&self) -> f64 {
        self.n_canary as f64 * self.n_primary as f64 - self.u_canary
    }

    /// U's mean when neither side tends to be higher: n₁n₂/2.
    pub fn mean(&self) -> f64 {
        self.n_canary as f64 * self.n_primary as f64 / 2.0
    }

    /// U's standard deviation with the tie correction:
    /// √(n₁n₂/12 · ((n+1) − Σ(t³−t) / (n(n−1)))).
    pub fn sigma(&self) -> f64 {
        let (n1, n2) = (self.n_canary as f64, self.n_primary as f64);
        let n = n1 + n2;
        if n < 2.0 {
            return 0.0;
        }
        let variance = n1 * n2 / 12.0 * ((n + 1.0) - self.ties / (n * (n - 1.0)));
        variance.max(0.0).sqrt()
    }

    /// The p-value of `alternative` by the normal approximation with a
    /// continuity correction. With no spread at all (every value tied) there
    /// is no evidence of a difference: 1.
    pub fn p_value(&self, alternative: Alternative) -> f64 {
        let sigma = self.sigma();
        if sigma == 0.0 {
            return 1.0;
        }
        let z = |u: f64| (u - self.mean() - 0.5) / sigma;
        let p = match alternative {
            Alternative::Greater => normal_sf(z(self.u_canary)),
            Alternative::Less => normal_sf(z(self.u_primary())),
            Alternative::TwoSided => 2.0 * normal_sf(z(self.u_canary.max(self.u_primary()))),
        };
        p.clamp(0.0, 1.0)
    }
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, to a relative error below 1.2e-7
/// everywhere (Numerical Recipes' Chebyshev fit): plugins get no libm.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The median, for the log.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// A p-value with three significant digits (in scientific notation below
/// 0.0001), or more when rounding would make it read as not below `alpha`.
pub fn format_p(p: f64, alpha: f64) -> String {
    let with = |digits: usize| -> String {
        if p == 0.0 {
            return "0".into();
        }
        if p < 1e-4 {
            return format!("{:.*e}", digits - 1, p);
        }
        let decimals = (digits as i32 - 1 - p.log10().floor() as i32).max(0) as usize;
        let s = format!("{p:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    for digits in [3, 6, 9] {
        let s = with(digits);
        if s.parse::<f64>()
            .is_ok_and(|shown| (shown < alpha) == (p < alpha))
        {
            return s;
        }
    }
    format!("{p:e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::evaluator::ThresholdRange;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    fn metric(name: &str, config: &str) -> Metric {
        Metric {
            name: name.into(),
            threshold_range: ThresholdRange {
                min: None,
                max: None,
            },
            config: config.into(),
        }
    }

    fn samples(canary: Vec<f64>, primary: Vec<f64>) -> Samples {
        Samples {
            canary: canary.last().copied().unwrap_or(0.0),
            primary: primary.last().copied(),
            canary_series: canary,
            primary_series: primary,
        }
    }

    /// U counted pair by pair, the definition, to check the rank sums.
    fn brute_force_u(canary: &[f64], primary: &[f64]) -> f64 {
        let mut u = 0.0;
        for &c in canary {
            for &p in primary {
                if c > p {
                    u += 1.0;
                } else if c == p {
                    u += 0.5;
                }
            }
        }
        u
    }

    /// Deterministic pseudo-random values with many ties.
    fn lcg(seed: u64, n: usize, modulo: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((x >> 33) % modulo) as f64
            })
            .collect()
    }

    #[test]
    fn erfc_and_normal_tail_known_values() {
        // Reference values: erfc(1), erfc(2), erfc(0.5), erfc(-1), erfc(5).
        for (x, expected) in [
            (0.0, 1.0),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_265),
            (0.5, 0.479_500_122_186_953_5),
            (-1.0, 1.842_700_792_949_715),
            (5.0, 1.537_459_794_428_035e-12),
        ] {
            assert!(close(erfc(x), expected, 2e-7), "erfc({x}) = {}", erfc(x));
        }
        assert!(close(normal_sf(0.0), 0.5, 2e-7));
        // The two-sided 5% point of the normal distribution.
        assert!(close(normal_sf(1.959_963_985), 0.025, 1e-6));
        assert!(close(normal_sf(-1.959_963_985), 0.975, 1e-6));
        assert!(close(normal_sf(3.0), 0.001_349_898_031_630_094_6, 1e-6));
    }

    #[test]
    fn scipy_documentation_example() {
        // SciPy's mannwhitneyu docs: ages of males and females,
        // method="asymptotic" gives U=17 and p=0.11134688653314041.
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let t = UTest::new(&males, &females);
        assert_eq!(t.u_canary, 17.0);
        assert_eq!(t.u_primary(), 3.0);
        assert!(close(
            t.p_value(Alternative::TwoSided),
            0.111_346_886_533_140_41,
            1e-6
        ));
    }

    #[test]
    fn separated_samples() {
        // No overlap: U=0 and U=25, p=0.012186 two-sided (half one-sided).
        let low = [1.0, 2.0, 3.0, 4.0, 5.0];
        let high = [6.0, 7.0, 8.0, 9.0, 10.0];
        let t = UTest::new(&high, &low);
        assert_eq!((t.u_canary, t.u_primary()), (25.0, 0.0));
        assert!(close(
            t.p_value(Alternative::TwoSided),
            0.012_185_780_355_344_818,
            1e-6
        ));
        assert!(close(
            t.p_value(Alternative::Greater),
            0.006_092_890_177_672_409,
            1e-6
        ));
        assert!(t.p_value(Alternative::Less) > 0.99);
    }

    /// The canary's values such that exactly `k[i]` of the primary's
    /// 1..=10 lie below the i-th: U = Σk. All values distinct (no ties).
    fn with_u(k: &[u32]) -> (Vec<f64>, Vec<f64>) {
        let canary = k
            .iter()
            .enumerate()
            .map(|(i, &k)| f64::from(k) + 0.1 + 0.01 * i as f64)
            .collect();
        let primary = (1..=10).map(f64::from).collect();
        (canary, primary)
    }

    #[test]
    fn textbook_critical_value_for_ten_and_ten() {
        // Tables of the Mann-Whitney U test: with n₁ = n₂ = 10, U ≤ 23 is
        // significant at 5% (two-sided). The approximation agrees.
        let (c, p) = with_u(&[0, 0, 0, 1, 2, 3, 3, 4, 5, 5]);
        let t = UTest::new(&c, &p);
        assert_eq!(t.u_canary, 23.0);
        let p23 = t.p_value(Alternative::TwoSided);
        assert!(close(p23, 0.045_154_569_624_279_05, 1e-6), "{p23}");
        let (c, p) = with_u(&[0, 0, 0, 1, 2, 3, 3, 4, 5, 6]);
        let t = UTest::new(&c, &p);
        assert_eq!(t.u_canary, 24.0);
        let p24 = t.p_value(Alternative::TwoSided);
        assert!(close(p24, 0.053_902_557_169_387_22, 1e-6), "{p24}");
        assert!(p23 < 0.05 && p24 > 0.05);
    }

    #[test]
    fn ties_get_average_ranks_and_shrink_the_variance() {
        // canary 2,3,3,4 vs primary 1,2,2,3: ranks 1 | 3 3 3 | 6 6 6 | 8,
        // R = 3+6+6+8 = 23, U = 23 - 10 = 13; Σ(t³-t) = 24 + 24 = 48;
        // σ² = 16/12 · (9 - 48/56) = 10.857…; z = (13 - 8 - 0.5)/σ.
        let canary = [2.0, 3.0, 3.0, 4.0];
        let primary = [1.0, 2.0, 2.0, 3.0];
        let t = UTest::new(&canary, &primary);
        assert_eq!(t.u_canary, 13.0);
        assert_eq!(t.ties, 48.0);
        assert!(close(
            t.sigma(),
            (16.0 / 12.0 * (9.0 - 48.0 / 56.0_f64)).sqrt(),
            1e-12
        ));
        assert!(close(
            t.p_value(Alternative::Greater),
            0.086_016_854_460_911_48,
            1e-6
        ));
        assert!(close(
            t.p_value(Alternative::TwoSided),
            0.172_033_708_921_822_96,
            1e-6
        ));
        // Without the correction σ² would be 12.
        assert!(t.sigma() < 12.0_f64.sqrt());
    }

    #[test]
    fn rank_sums_match_the_definition() {
        for seed in 0..20 {
            let canary = lcg(seed, 7 + seed as usize, 6);
            let primary = lcg(seed + 100, 13, 6);
            let t = UTest::new(&canary, &primary);
            assert_eq!(t.u_canary, brute_force_u(&canary, &primary), "seed {seed}");
            assert_eq!(
                t.u_primary(),
                brute_force_u(&primary, &canary),
                "seed {seed}"
            );
            // Swapping the sides swaps the one-sided tests.
            let s = UTest::new(&primary, &canary);
            assert!(close(
                t.p_value(Alternative::Greater),
                s.p_value(Alternative::Less),
                1e-12
            ));
            assert!(close(
                t.p_value(Alternative::TwoSided),
                s.p_value(Alternative::TwoSided),
                1e-12
            ));
        }
    }

    #[test]
    fn all_values_tied_is_no_difference() {
        let t = UTest::new(&[5.0; 12], &[5.0; 12]);
        assert_eq!(t.sigma(), 0.0);
        assert_eq!(t.p_value(Alternative::TwoSided), 1.0);
        let verdict = judge("latency", &Settings::default(), &[5.0; 12], &[5.0; 12]);
        assert_eq!(verdict, Verdict::Pass);
    }

    fn slow() -> Vec<f64> {
        vec![
            120.0, 131.0, 118.0, 140.0, 125.0, 129.0, 133.0, 122.0, 137.0, 128.0, 126.0, 135.0,
        ]
    }

    fn fast() -> Vec<f64> {
        vec![
            98.0, 101.0, 95.0, 104.0, 99.0, 97.0, 102.0, 100.0, 96.0, 103.0, 99.0, 101.0,
        ]
    }

    #[test]
    fn verdicts_follow_the_direction() {
        let increase = Settings {
            direction: Direction::Increase,
            ..Settings::default()
        };
        let decrease = Settings {
            direction: Direction::Decrease,
            ..Settings::default()
        };
        let either = Settings::default();
        // 12 vs 12, no overlap: U=144, one-sided p = sf((144-72-0.5)/σ).
        let t = UTest::new(&slow(), &fast());
        assert_eq!(t.u_canary, 144.0);
        let p = t.p_value(Alternative::Greater);
        assert!(p < 1e-4, "{p}");
        assert_eq!(
            judge("request-duration", &increase, &slow(), &fast()),
            Verdict::Fail(format!(
                "request-duration: canary is higher than primary (Mann-Whitney U=144, p={} < 0.05)",
                format_p(p, 0.05)
            ))
        );
        assert_eq!(
            judge("request-duration", &decrease, &slow(), &fast()),
            Verdict::Pass
        );
        match judge("request-duration", &either, &slow(), &fast()) {
            Verdict::Fail(r) => assert!(r.contains("canary is higher than primary"), "{r}"),
            other => panic!("{other:?}"),
        }
        match judge("success-rate", &decrease, &fast(), &slow()) {
            Verdict::Fail(r) => assert!(
                r.starts_with("success-rate: canary is lower than primary (Mann-Whitney U=0, p="),
                "{r}"
            ),
            other => panic!("{other:?}"),
        }
        match judge("success-rate", &either, &fast(), &slow()) {
            Verdict::Fail(r) => assert!(r.contains("canary is lower than primary"), "{r}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(judge("x", &increase, &fast(), &slow()), Verdict::Pass);
    }

    #[test]
    fn overlapping_samples_pass() {
        // Interleaved: no significant difference either way.
        let canary = [
            100.0, 103.0, 98.0, 101.0, 99.0, 102.0, 97.0, 104.0, 100.0, 101.0,
        ];
        let primary = [
            101.0, 99.0, 102.0, 98.0, 100.0, 103.0, 97.0, 100.0, 104.0, 99.0,
        ];
        let t = UTest::new(&canary, &primary);
        assert!(t.p_value(Alternative::TwoSided) > 0.5);
        assert_eq!(
            judge("latency", &Settings::default(), &canary, &primary),
            Verdict::Pass
        );
    }

    #[test]
    fn alpha_decides() {
        // p ≈ 0.045 two-sided: significant at 5%, not at 1%.
        let (c, p) = with_u(&[0, 0, 0, 1, 2, 3, 3, 4, 5, 5]);
        let at = |alpha: f64| Settings {
            alpha,
            ..Settings::default()
        };
        assert!(matches!(judge("m", &at(0.05), &c, &p), Verdict::Fail(_)));
        assert_eq!(judge("m", &at(0.01), &c, &p), Verdict::Pass);
        match judge("m", &at(0.05), &c, &p) {
            Verdict::Fail(r) => assert_eq!(
                r,
                "m: canary is lower than primary (Mann-Whitney U=23, p=0.0452 < 0.05)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_few_samples_is_inconclusive() {
        let settings = Settings::default();
        assert_eq!(
            judge("latency", &settings, &slow()[..4], &fast()),
            Verdict::Inconclusive(
                "latency: too few samples for a Mann-Whitney test (canary 4, primary 12; minSamples 10)"
                    .into()
            )
        );
        assert!(matches!(
            judge("latency", &settings, &slow(), &[]),
            Verdict::Inconclusive(_)
        ));
    }

    #[test]
    fn settings_from_config() {
        assert_eq!(Settings::parse(""), Ok(Settings::default()));
        let s = Settings::parse(
            r#"{"direction": "increase", "alpha": 0.01, "minSamples": 20, "windowSeconds": 1200, "stepSeconds": 60}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            Settings {
                direction: Direction::Increase,
                alpha: 0.01,
                min_samples: 20,
                window_seconds: 1200,
                step_seconds: 60
            }
        );
        for (bad, says) in [
            (r#"{"direction": "up"}"#, "\"direction\" must be"),
            (r#"{"direction": 1}"#, "\"direction\" must be a string"),
            (r#"{"alpha": 0}"#, "\"alpha\" must be between 0 and 1"),
            (r#"{"alpha": 1.5}"#, "\"alpha\" must be between 0 and 1"),
            (r#"{"minSamples": 2}"#, "at least 3"),
            (r#"{"minSamples": 2.5}"#, "whole number"),
            (
                r#"{"stepSeconds": 0}"#,
                "\"stepSeconds\" must be at least 1",
            ),
            (
                r#"{"windowSeconds": 10, "stepSeconds": 30}"#,
                "at most \"windowSeconds\"",
            ),
            (
                r#"{"windowSeconds": 100000, "stepSeconds": 1}"#,
                "at most 11000",
            ),
            (
                r#"{"windowSeconds": 120, "stepSeconds": 60}"#,
                "fewer than \"minSamples\" (10)",
            ),
            ("{oops", "invalid JSON"),
        ] {
            let e = Settings::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_trait_asks_for_the_configured_window() {
        let m = metric("latency", r#"{"windowSeconds": 300, "stepSeconds": 15}"#);
        assert!(MannWhitney::wants_baseline(&m));
        assert_eq!(
            MannWhitney::wants_series(&m),
            Some(SeriesRequest {
                window_seconds: 300,
                step_seconds: 15
            })
        );
        // Bad settings: the default window, and evaluate says what is wrong.
        let m = metric("latency", r#"{"alpha": 7}"#);
        assert_eq!(
            MannWhitney::wants_series(&m),
            Some(SeriesRequest {
                window_seconds: 600,
                step_seconds: 30
            })
        );
        let e = MannWhitney::evaluate(&m, &samples(slow(), fast())).unwrap_err();
        assert!(
            e.starts_with("metric latency: invalid plugin config"),
            "{e}"
        );

        let m = metric("latency", r#"{"direction": "increase"}"#);
        assert!(matches!(
            MannWhitney::evaluate(&m, &samples(slow(), fast())),
            Ok(Verdict::Fail(_))
        ));
        assert_eq!(
            MannWhitney::evaluate(&m, &samples(fast(), slow())),
            Ok(Verdict::Pass)
        );
    }

    #[test]
    fn p_values_read_right() {
        assert_eq!(format_p(0.003, 0.05), "0.003");
        assert_eq!(format_p(0.012_185_78, 0.05), "0.0122");
        assert_eq!(format_p(0.000_012_34, 0.05), "1.23e-5");
        assert_eq!(format_p(0.5, 0.05), "0.5");
        // Never "0.05 < 0.05".
        assert_eq!(format_p(0.049_999_7, 0.05), "0.0499997");
        assert!(format_p(0.049_999_7, 0.05).parse::<f64>().unwrap() < 0.05);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
