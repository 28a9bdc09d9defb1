//! The optional `sluice:plugin/settings@0.2.0` export: a plugin's own check
//! of the settings a Canary gives it (`validate-config`), called when the
//! Canary changes, before the settings are used.
//!
//! A world cannot declare an optional export, so the host does not bind it
//! with the world's bindings: it looks the function up by name in the
//! component once, at load, and a plugin without it has nothing to say.

use wasmtime::Store;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

use super::CallState;

const INTERFACE: &str = "sluice:plugin/settings@0.2.0";
const FUNCTION: &str = "validate-config";

/// The settings check `component` exports, if it does.
pub(crate) fn export(component: &Component) -> Option<ComponentExportIndex> {
    let interface = component.get_export_index(None, INTERFACE)?;
    component.get_export_index(Some(&interface), FUNCTION)
}

/// Instantiates `pre` and calls its `validate-config` (at `func`) with
/// `config`: `Ok(Err(message))` is the plugin's refusal.
pub(crate) async fn validate(
    store: &mut Store<CallState>,
    pre: &InstancePre<CallState>,
    func: &ComponentExportIndex,
    config: &str,
) -> wasmtime::Result<Result<(), String>> {
    let instance = pre.instantiate_async(&mut *store).await?;
    let func = instance.get_typed_func::<(&str,), (Result<(), String>,)>(&mut *store, func)?;
    let (answer,) = func.call_async(&mut *store, (config,)).await?;
    Ok(answer)
}
