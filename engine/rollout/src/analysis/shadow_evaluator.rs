//! A new evaluator version under shadow (`rolloutPolicy: shadow` on an
//! evaluator RolloutPlugin) judges the same samples as the current one on
//! live Canaries. Its verdicts are recorded, never applied: a verdict of
//! another kind (pass, fail, needs more data, fault) is a divergence, an
//! event and a metric; after the required verdicts like the current one's
//! in a row it takes over.

use sluice_api::MetricCheck;
use sluice_host::bindings::evaluator::{Metric, Samples, Verdict};
use sluice_host::evaluator::Requirements;
use sluice_host::registry::{Shadow, ShadowOutcome};
use sluice_host::{EvaluatorPlugin, PluginFault, PluginRegistry};

/// What a shadowed verdict has to say on the Canary: a divergence
/// (a warning) or a takeover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowNote {
    pub warning: bool,
    pub message: String,
}

/// What the current version was asked and answered for one metric.
pub(super) struct Judged<'a> {
    /// The check's evaluator under shadow.
    pub shadow: Shadow<EvaluatorPlugin>,
    pub check: &'a MetricCheck,
    pub current: &'a EvaluatorPlugin,
    pub requirements: Requirements,
    pub samples: &'a Samples,
    pub verdict: &'a Result<Verdict, PluginFault>,
}

/// Asks the shadow of the check's evaluator to judge what the current
/// version judged; the note to publish, if any.
pub(super) async fn judge_in_shadow(
    plugins: &PluginRegistry,
    judged: Judged<'_>,
    target_label: &str,
) -> Option<ShadowNote> {
    let name = judged.check.evaluator.as_str();
    let shadow = &judged.shadow;
    let candidate = &shadow.plugin;
    if candidate.digest() == judged.current.digest() {
        return None;
    }
    let answer = candidate_answer(candidate, &judged).await;
    let answer = answer.as_ref().map_err(String::clone);
    let current = judged.verdict.as_ref().map_err(|f| f.to_string());
    let divergence = (kind(&answer) != kind(&current)).then(|| {
        format!(
            "on metric {}: sha256:{} judged {}, sha256:{} would have judged {}",
            judged.check.name,
            short(judged.current.digest()),
            describe(&current),
            short(candidate.digest()),
            describe(&answer)
        )
    });
    let outcome = plugins.record_evaluator_shadow(name, candidate.digest(), divergence.clone());
    match (outcome, divergence) {
        (ShadowOutcome::Diverged(_), Some(why)) => {
            plugins.host().metrics().record_shadow_divergence(name);
            Some(ShadowNote {
                warning: true,
                message: format!("Shadow evaluator {name} of {target_label} diverged {why}"),
            })
        }
        (ShadowOutcome::TookOver, _) => Some(ShadowNote {
            warning: false,
            message: format!(
                "Shadow evaluator {name} sha256:{} took over after {} verdicts the same as sha256:{}",
                short(candidate.digest()),
                shadow.required,
                short(judged.current.digest())
            ),
        }),
        _ => None,
    }
}

/// The candidate's verdict on the same samples, held to its own settings
/// check; asking for other data than the current version got is an answer
/// of its own (it cannot be judged on the same samples).
async fn candidate_answer(
    candidate: &EvaluatorPlugin,
    judged: &Judged<'_>,
) -> Result<Verdict, String> {
    let config = &judged.check.evaluator_config;
    if let Err(why) = candidate.check_config(config).await {
        return Err(format!("refused the settings: evaluatorConfig {why}"));
    }
    let metric = Metric {
        name: judged.check.name.clone(),
        threshold_range: sluice_host::bindings::evaluator::ThresholdRange {
            min: judged.check.threshold_range.min,
            max: judged.check.threshold_range.max,
        },
        config: candidate.config_or_default(config),
    };
    let wanted = candidate
        .requirements(&metric)
        .await
        .map_err(|f| f.to_string())?;
    if wanted != judged.requirements {
        return Err(format!(
            "asked for other data ({wanted:?}, not {:?})",
            judged.requirements
        ));
    }
    candidate
        .evaluate(&metric, judged.samples.clone())
        .await
        .map_err(|f| f.to_string())
}

/// The kind of an answer: what a divergence compares (reasons may differ).
fn kind(answer: &Result<&Verdict, String>) -> &'static str {
    match answer {
        Ok(Verdict::Pass) => "pass",
        Ok(Verdict::Fail(_) | Verdict::Inconclusive(_)) => "fail",
        Ok(Verdict::NeedsMoreData(_)) => "needs more data",
        Err(_) => "fault",
    }
}

fn describe(answer: &Result<&Verdict, String>) -> String {
    match answer {
        Ok(Verdict::Pass) => "pass".into(),
        Ok(Verdict::Fail(why)) => format!("fail ({why})"),
        Ok(Verdict::Inconclusive(why)) => format!("inconclusive ({why})"),
        Ok(Verdict::NeedsMoreData(why)) => format!("needs more data ({why})"),
        Err(why) => format!("a fault ({why})"),
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}
