//! Messages of the HTTP API.

use serde::{Deserialize, Serialize};

use crate::{ConfigDifference, EpochMetrics, FieldError, RunConfig, StepMetrics};

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Training on a worker.
    Running,
    /// Trained every epoch, or stopped early by its patience.
    Completed,
    /// Stopped by an error (see the run's `error`).
    Failed,
    /// Stopped at a user's request.
    Cancelled,
}

impl RunStatus {
    /// Every status, in the order a run passes through them.
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

    /// The status's name, as in JSON and the API's query (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `s` (as [`RunStatus::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// A stored run without its metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    /// The run's id.
    pub id: i64,
    /// Where the run is in its life.
    pub status: RunStatus,
    /// What the run trains.
    pub config: RunConfig,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// Labels for finding and grouping runs, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text: what the run was for, what was learnt.
    #[serde(default)]
    pub note: String,
    /// Epochs finished so far.
    #[serde(default)]
    pub epochs_done: u32,
    /// Best fused accuracy so far on the validation split (test split without one).
    #[serde(default)]
    pub best_accuracy: Option<f64>,
    /// Each unimodal head's accuracy at that best epoch, on the same split.
    #[serde(default)]
    pub best_unimodal: Vec<f64>,
    /// Wall time from the start of training to the end of the last epoch finished.
    #[serde(default)]
    pub elapsed_seconds: Option<f64>,
    /// The worker training it, while it runs.
    #[serde(default)]
    pub worker: Option<String>,
    /// How many times a worker has started it (above 1 after a crash re-queued it).
    #[serde(default)]
    pub attempts: u32,
    /// The project it belongs to, which decides who may see and change it.
    #[serde(default)]
    pub project_id: i64,
}

impl Run {
    /// Seconds until its last epoch at the pace of the epochs so far, while it trains
    /// (early stopping may end it sooner).
    pub fn eta_seconds(&self) -> Option<f64> {
        let elapsed = self.elapsed_seconds?;
        if self.status != RunStatus::Running || self.epochs_done == 0 {
            return None;
        }
        let left = self.config.epochs.saturating_sub(self.epochs_done);
        Some(elapsed / f64::from(self.epochs_done) * f64::from(left))
    }
}

/// Tags a run may have, at most.
const MAX_TAGS: usize = 32;
/// Characters of one tag, at most.
const MAX_TAG_CHARS: usize = 64;
/// Characters of a run's note, at most.
const MAX_NOTE_CHARS: usize = 20_000;

/// Changes to a run's tags and note (`PATCH /api/runs/{id}`); absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunPatch {
    /// The run's new tags, replacing all the old ones.
    pub tags: Option<Vec<String>>,
    /// The run's new note.
    pub note: Option<String>,
}

impl RunPatch {
    /// Tags must be 1 to 64 characters of letters, digits and `-_.:/`; at most 32 of them.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(tags) = &self.tags {
            if tags.len() > MAX_TAGS {
                errors.push(FieldError::new(
                    "tags",
                    format!("at most {MAX_TAGS} tags, got {}", tags.len()),
                ));
            }
            for (i, tag) in tags.iter().enumerate() {
                let allowed = |c: char| c.is_alphanumeric() || "-_.:/".contains(c);
                let chars = tag.chars().count();
                if chars == 0 || chars > MAX_TAG_CHARS || !tag.chars().all(allowed) {
                    errors.push(FieldError::new(
                        format!("tags[{i}]"),
                        format!(
                            "a tag is 1 to {MAX_TAG_CHARS} letters, digits or -_.:/ (got {tag:?})"
                        ),
                    ));
                }
            }
        }
        if let Some(note) = &self.note {
            if note.chars().count() > MAX_NOTE_CHARS {
                errors.push(FieldError::new(
                    "note",
                    format!("at most {MAX_NOTE_CHARS} characters"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The column the run list is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunSort {
    /// Creation order.
    #[default]
    Id,
    /// Status name, alphabetically.
    Status,
    /// Method name (`MethodConfig::name`), alphabetically.
    Method,
    /// Dataset kind, alphabetically.
    Dataset,
    /// Best fused accuracy so far; runs without one count as the lowest.
    BestAccuracy,
}

/// Which way a sorted list runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first.
    #[default]
    Desc,
}

/// Which runs to list (`GET /api/runs?...`): every filter given must match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RunQuery {
    /// Only this project's runs; none: every project the caller may see.
    pub project: Option<i64>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Method name, such as `mlb` (see `MethodConfig::name`).
    pub method: Option<String>,
    /// Dataset kind, such as `crema_d`.
    pub dataset: Option<String>,
    /// Only runs with this tag.
    pub tag: Option<String>,
    /// Case-insensitive text found in the note or a tag.
    pub search: Option<String>,
    /// The column the list is sorted by.
    pub sort: RunSort,
    /// Which way it is sorted.
    pub order: SortOrder,
    /// Page size, 1 to [`RunQuery::MAX_LIMIT`].
    pub limit: u32,
    /// Matching runs skipped before the page.
    pub offset: u32,
}

impl RunQuery {
    /// The largest page the server sends.
    pub const MAX_LIMIT: u32 = 500;
}

impl Default for RunQuery {
    fn default() -> Self {
        Self {
            project: None,
            status: None,
            method: None,
            dataset: None,
            tag: None,
            search: None,
            sort: RunSort::Id,
            order: SortOrder::Desc,
            limit: 50,
            offset: 0,
        }
    }
}

/// One page of the run list, and how many runs match in all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunPage {
    /// The runs of the page, in the requested order.
    pub runs: Vec<Run>,
    /// How many runs match, over every page.
    pub total: u64,
}

/// A run with every epoch's metrics recorded so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDetail {
    /// The run itself.
    #[serde(flatten)]
    pub run: Run,
    /// Every epoch finished so far, in order.
    pub epochs: Vec<EpochMetrics>,
    /// Position of the run's last logged event when the epochs were read: a viewer follows
    /// the live stream from here (`?after=`), having the epochs before it.
    #[serde(default)]
    pub last_event: i64,
}

/// What the server sends on a run's live event stream (Server-Sent Events, JSON data). Each
/// event's SSE id is its position in the run's event log: a client that reconnects with
/// `Last-Event-ID` receives exactly the events after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run's status changed.
    Status {
        /// The new status.
        status: RunStatus,
        /// Why it failed, when it did.
        error: Option<String>,
    },
    /// An epoch finished, with its metrics.
    // Boxed: far larger than the other variants.
    Epoch(Box<EpochMetrics>),
    /// An optimisation step finished.
    Step(Box<StepMetrics>),
}

/// A dataset the server knows, for the dataset list and its attribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetInfo {
    /// The `kind` to use in a run's dataset configuration.
    pub kind: String,
    /// Its full name.
    pub name: String,
    /// Its modalities, in words.
    pub modalities: String,
    /// Whether its files were found in the data directory (generated sets always are).
    pub available: bool,
    /// Where it comes from: its authors or publisher.
    pub source: String,
    /// The terms it is used under.
    pub license: String,
}

/// Body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub message: String,
    /// Invalid fields, for 422 responses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// Runs side by side: each run, and only the configuration fields that differ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comparison {
    /// The compared runs, in the order asked for.
    pub runs: Vec<Run>,
    /// The configuration fields that are not the same in every run.
    pub differences: Vec<ConfigDifference>,
    /// Each run's epochs so far, in the order of `runs`: the compare page's per-epoch curves
    /// in the same answer.
    #[serde(default)]
    pub epochs: Vec<Vec<EpochMetrics>>,
}

/// What a member of a project may do: viewers read its runs, editors also start, change,
/// cancel, delete and share them, owners also manage its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the project's runs.
    Viewer,
    /// Also starts, changes, cancels, deletes and shares them.
    Editor,
    /// Also manages the project's members.
    Owner,
}

impl Role {
    /// The role's name, as in JSON (`editor`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Owner => "owner",
        }
    }

    /// The role named `s` (as [`Role::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Viewer, Self::Editor, Self::Owner]
            .into_iter()
            .find(|role| role.as_str() == s)
    }
}

/// A user as others see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// The user's id.
    pub id: i64,
    /// The name they sign in with.
    pub name: String,
    /// Admins create users.
    pub admin: bool,
    /// A disabled user cannot sign in, and their tokens do not work.
    #[serde(default)]
    pub disabled: bool,
}

/// What an admin changes about a user (`PATCH /users/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// Disable (signing in refused, every session and token revoked) or enable the user.
    pub disabled: bool,
}

/// A new API token's settings (`POST /auth/tokens`); the body may be left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TokenRequest {
    /// What the token is for, shown when tokens are listed (at most 100 characters).
    pub label: Option<String>,
    /// Days until the token stops working, 1 to 3650; default 90.
    pub expires_in_days: Option<u32>,
}

/// One of the caller's sessions or API tokens, without its secret (`GET /auth/tokens`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// Its id, to revoke it by.
    pub id: i64,
    /// `session` (a sign-in) or `api`.
    pub kind: String,
    /// What an API token is for, as given when it was made.
    pub label: Option<String>,
    /// When it was made (milliseconds since 1970); none for tokens made before this was kept.
    pub created_ms: Option<i64>,
    /// When it stops working (milliseconds since 1970); none: never.
    pub expires_ms: Option<i64>,
    /// Whether this request presented it.
    pub current: bool,
}

/// A password change (`POST /auth/password`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current: String,
    /// The new password, at least 8 characters.
    pub new: String,
}

/// A project the caller belongs to, and the caller's role in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    /// The project's id.
    pub id: i64,
    /// The project's name.
    pub name: String,
    /// The caller's role in it.
    pub role: Role,
}

/// A member of a project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// The member's user name.
    pub user: String,
    /// What they may do in the project.
    pub role: Role,
}

/// Who is calling, and the projects they belong to (`GET /api/auth/me`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// The signed-in user.
    pub user: User,
    /// Their projects, with their role in each.
    pub projects: Vec<Project>,
}

/// `POST /api/auth/login` and `POST /api/users`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The user name.
    pub name: String,
    /// The password.
    pub password: String,
}

/// A secret shown once: a session or API token, or a share link's token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Secret {
    /// The id of the session, API token or share link, to revoke it by.
    pub id: i64,
    /// The secret itself; the server keeps only its hash.
    pub token: String,
}

/// A read-only link to one run. The token itself is only shown when the link is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareLink {
    /// The link's id.
    pub id: i64,
    /// The run it opens.
    pub run_id: i64,
    /// Who made it.
    pub created_by: String,
    /// When it was made, RFC 3339, UTC.
    pub created_at: String,
    /// Whether it was revoked: it opens nothing any more.
    pub revoked: bool,
}

/// A ready-made run configuration: a paper's training recipe, or a quick demo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preset {
    /// File stem in `presets/`, e.g. `mlb-paper-training`.
    pub name: String,
    /// The preset's leading comment: where the recipe comes from and what it runs on.
    pub description: String,
    /// The run configuration it starts from.
    pub config: RunConfig,
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

/// What an audited request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A run was queued (created or cloned).
    RunCreated,
    /// A sweep's runs were queued.
    SweepCreated,
    /// A run's note or tags changed.
    RunChanged,
    /// A run was cancelled (or its cancellation asked for).
    RunCancelled,
    /// A run was deleted with its metrics and checkpoints.
    RunDeleted,
    /// A share link to a run was made.
    RunShared,
    /// A share link was revoked.
    ShareRevoked,
    /// A project was created.
    ProjectCreated,
    /// A project was renamed.
    ProjectRenamed,
    /// A member was added to a project or their role changed.
    MemberSet,
    /// A member was removed from a project.
    MemberRemoved,
    /// An admin created a user.
    UserCreated,
    /// An admin disabled a user.
    UserDisabled,
    /// An admin enabled a user.
    UserEnabled,
    /// An admin revoked every session and token of a user.
    UserTokensRevoked,
    /// A user changed their password.
    PasswordChanged,
    /// A user made an API token.
    TokenCreated,
    /// A user revoked one of their sessions or tokens.
    TokenRevoked,
}

impl AuditAction {
    /// The snake_case name, as stored and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunCreated => "run_created",
            Self::SweepCreated => "sweep_created",
            Self::RunChanged => "run_changed",
            Self::RunCancelled => "run_cancelled",
            Self::RunDeleted => "run_deleted",
            Self::RunShared => "run_shared",
            Self::ShareRevoked => "share_revoked",
            Self::ProjectCreated => "project_created",
            Self::ProjectRenamed => "project_renamed",
            Self::MemberSet => "member_set",
            Self::MemberRemoved => "member_removed",
            Self::UserCreated => "user_created",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserTokensRevoked => "user_tokens_revoked",
            Self::PasswordChanged => "password_changed",
            Self::TokenCreated => "token_created",
            Self::TokenRevoked => "token_revoked",
        }
    }
}

/// One entry of the audit log: who did what, when, in answer to which request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its position in the log (newer entries have larger ids).
    pub id: i64,
    /// When (milliseconds since 1970).
    pub at_ms: i64,
    /// The user who did it.
    pub actor: String,
    /// What they did.
    pub action: AuditAction,
    /// The project concerned, if any.
    pub project_id: Option<i64>,
    /// The run concerned, if any.
    pub run_id: Option<i64>,
    /// The particulars, for a person: a member and role, a link id, a run's name.
    pub detail: String,
    /// The request's `x-request-id`, to find it in the server's log.
    pub request_id: Option<String>,
}
