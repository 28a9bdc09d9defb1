//! A plugin's check of the settings a Canary gives it: the JSON Schema the
//! component embeds (`schema.rs`), then the optional
//! `sluice:plugin/settings@0.2.0` export (`validate-config`), called when
//! the Canary changes, before the settings are used. Strategies and
//! evaluators share it.
//!
//! A world cannot declare an optional export, so the host does not bind it
//! with the world's bindings: it looks the function up by name in the
//! component once, at load, and a plugin without it has nothing to say.

use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

use super::CallState;
use super::call::{CallContext, run_call};
use super::memo::Memo;
use super::schema::{ConfigError, ConfigSchema};

const INTERFACE: &str = "sluice:plugin/settings@0.2.0";
const FUNCTION: &str = "validate-config";

/// The settings check `component` exports, if it does.
pub(crate) fn export(component: &Component) -> Option<ComponentExportIndex> {
    let interface = component.get_export_index(None, INTERFACE)?;
    component.get_export_index(Some(&interface), FUNCTION)
}

/// How one plugin's settings are checked. Cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct SettingsCheck {
    /// The settings schema the component embeds, compiled once at load.
    schema: Option<ConfigSchema>,
    /// The `validate-config` export (0.2) and what instantiates it.
    validator: Option<(InstancePre<CallState>, ComponentExportIndex)>,
    /// The plugin's verdicts by settings: `validate-config` is pure.
    verdicts: Memo<Result<(), String>>,
}

impl SettingsCheck {
    pub(crate) fn new(
        schema: Option<ConfigSchema>,
        validator: Option<(InstancePre<CallState>, ComponentExportIndex)>,
    ) -> Self {
        Self {
            schema,
            validator,
            verdicts: Memo::default(),
        }
    }

    pub(crate) fn schema(&self) -> Option<&ConfigSchema> {
        self.schema.as_ref()
    }

    pub(crate) fn validates(&self) -> bool {
        self.validator.is_some()
    }

    /// Checks `settings` against the schema (unless empty), then with the
    /// plugin's `validate-config` within the call's budget. Its answer is
    /// remembered; a fault (a time-out, a trap) is not, and refuses too.
    pub(crate) async fn check(
        &self,
        cx: CallContext<'_>,
        settings: &str,
    ) -> Result<(), ConfigError> {
        if let Some(schema) = &self.schema
            && !settings.is_empty()
        {
            schema.check(settings)?;
        }
        let Some((pre, func)) = &self.validator else {
            return Ok(());
        };
        let key = Memo::<Result<(), String>>::key("validate-config", &settings);
        if let Some(verdict) = key.as_deref().and_then(|k| self.verdicts.get(k)) {
            return verdict.map_err(ConfigError::Refused);
        }
        let verdict = run_call(cx, async |store| {
            let instance = pre.instantiate_async(&mut *store).await?;
            let func =
                instance.get_typed_func::<(&str,), (Result<(), String>,)>(&mut *store, func)?;
            let (answer,) = func.call_async(&mut *store, (settings,)).await?;
            Ok(Ok(answer))
        })
        .await
        .map_err(|fault| ConfigError::Unchecked(fault.to_string()))?
        .map_err(|why| bounded_reason(&why));
        if let Some(k) = key {
            self.verdicts.put(k, verdict.clone());
        }
        verdict.map_err(ConfigError::Refused)
    }
}

/// A plugin's refusal as the host keeps it: one line of at most 1024
/// bytes, no control characters.
fn bounded_reason(why: &str) -> String {
    let mut line: String = why
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 1024 {
        let mut end = 1024;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    if line.trim().is_empty() {
        "refused without a reason".to_string()
    } else {
        line
    }
}
