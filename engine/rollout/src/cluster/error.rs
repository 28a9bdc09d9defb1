//! Why a read or write of the cluster failed, in the terms the engine and
//! the operator act on: a conflict (re-read and retry at once), a missing
//! object, an object that cannot be written as given, or any other failure
//! of the API server (retried with backoff).

use thiserror::Error;

pub use crate::error::{BoxError, chain};

#[derive(Debug, Error)]
pub enum ClusterError {
    /// HTTP 409: the object changed since it was read. Nothing was written.
    #[error(
        "{action}: it changed since it was read (409 Conflict); nothing was written: re-read it and retry"
    )]
    Conflict {
        action: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The object the write needs does not exist.
    #[error("{action}: not found")]
    NotFound { action: String },
    /// The object cannot be written as given (no name, not serialisable).
    #[error("{action}: {reason}")]
    Invalid { action: String, reason: String },
    /// This replica lost (or never held) the leader election: it must not
    /// write, so nothing was sent.
    #[error("{action}: this replica is not the leader; nothing was written")]
    NotLeader { action: String },
    /// The API server (or the way to it) failed; the source says how.
    #[error("{action}")]
    Api {
        action: String,
        #[source]
        source: BoxError,
    },
}

impl ClusterError {
    pub fn api(action: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Api {
            action: action.into(),
            source: source.into(),
        }
    }

    pub(crate) fn not_found(action: impl Into<String>) -> Self {
        Self::NotFound {
            action: action.into(),
        }
    }

    pub fn invalid(action: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            action: action.into(),
            reason: reason.into(),
        }
    }

    /// Whether re-reading the object and trying again can succeed at once.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// The result of a cluster call.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_every_cause_once() {
        let io = std::io::Error::other("connection refused");
        let e = ClusterError::api("reading Deployment test/podinfo", io);
        assert_eq!(
            chain(&e),
            "reading Deployment test/podinfo: connection refused"
        );
        assert!(!e.is_conflict());
        let c = ClusterError::Conflict {
            action: "writing the status of Canary test/podinfo".into(),
            source: None,
        };
        assert!(c.is_conflict());
        assert!(chain(&c).contains("409 Conflict"));
    }
}
