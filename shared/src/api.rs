//! Messages of the HTTP API.

use serde::{Deserialize, Serialize};

use crate::{ConfigDifference, EpochMetrics, FieldError, RunConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether the run will never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// A stored run without its metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub status: RunStatus,
    pub config: RunConfig,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Why the run failed, when it did.
    pub error: Option<String>,
}

/// A run with every epoch's metrics recorded so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    pub epochs: Vec<EpochMetrics>,
}

/// What the server sends on a run's live event stream (Server-Sent Events, JSON data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    Status {
        status: RunStatus,
        error: Option<String>,
    },
    /// Boxed: far larger than the other variants.
    Epoch(Box<EpochMetrics>),
}

/// A dataset the server knows, for the dataset list and its attribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// The `kind` to use in a run's dataset configuration.
    pub kind: String,
    pub name: String,
    pub modalities: String,
    /// Whether its files were found in the data directory (generated sets always are).
    pub available: bool,
    pub source: String,
    pub license: String,
}

/// Body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    /// Invalid fields, for 422 responses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_name() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(RunStatus::parse("done"), None);
    }

    #[test]
    fn events_are_tagged_by_type() {
        let event = RunEvent::Status {
            status: RunStatus::Running,
            error: None,
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "status", "status": "running", "error": null})
        );
    }
}

/// Runs side by side: each run, and only the configuration fields that differ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub runs: Vec<Run>,
    pub differences: Vec<ConfigDifference>,
}
