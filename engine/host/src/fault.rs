//! What can go wrong when a plugin is called. Every fault is contained: the
//! caller turns it into a failed check and never moves traffic because of it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The call ran past its time budget.
    Timeout { budget_ms: u64 },
    /// The guest tried to grow its memory past the cap.
    MemoryExhausted { cap_bytes: usize },
    /// The guest trapped (panic, unreachable, out-of-bounds access, …).
    Trap(String),
    /// The plugin returned an error of its own.
    Error(String),
    /// The plugin answered, but the answer breaks the contract.
    InvalidAnswer(String),
    /// The plugin could not be loaded or instantiated.
    Load(String),
}

impl FaultKind {
    /// A short name for metrics labels.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            FaultKind::Timeout { .. } => "timeout",
            FaultKind::MemoryExhausted { .. } => "memory",
            FaultKind::Trap(_) => "trap",
            FaultKind::Error(_) => "error",
            FaultKind::InvalidAnswer(_) => "invalid",
            FaultKind::Load(_) => "load",
        }
    }
}

/// A fault, naming the plugin at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PluginFault {
    pub(crate) plugin: String,
    pub kind: FaultKind,
}

impl PluginFault {
    /// A fault of `plugin`.
    pub fn new(plugin: &str, kind: FaultKind) -> Self {
        Self {
            plugin: plugin.to_string(),
            kind,
        }
    }
}

impl fmt::Display for PluginFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plugin;
        match &self.kind {
            FaultKind::Timeout { budget_ms } => {
                write!(f, "plugin {p} timed out: no answer within {budget_ms} ms")
            }
            FaultKind::MemoryExhausted { cap_bytes } => write!(
                f,
                "plugin {p} exhausted its memory: it tried to use more than {} MiB",
                cap_bytes / (1024 * 1024)
            ),
            FaultKind::Trap(t) => write!(f, "plugin {p} trapped: {t}"),
            FaultKind::Error(e) => write!(f, "plugin {p} returned an error: {e}"),
            FaultKind::InvalidAnswer(e) => write!(f, "plugin {p} returned an invalid answer: {e}"),
            FaultKind::Load(e) => write!(f, "plugin {p} could not be loaded: {e}"),
        }
    }
}
