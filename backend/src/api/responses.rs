//! The error answers the OpenAPI document lists, each written once: an endpoint's
//! `responses(...)` names its successes, its own conflicts, and the sets below that apply.
//! The types only describe (utoipa reads their shapes; none is ever built, hence
//! `allow(dead_code)` on each); the answers themselves are [`super::error::ApiError`]s.

use balancelab_shared::ErrorBody;
use utoipa::IntoResponses;

/// Endpoints for signed-in callers.
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(status = 401, description = "not signed in")]
pub(super) struct NotSignedIn(ErrorBody);

/// Endpoints that need a role in a project.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum NeedsRole {
    #[response(status = 401, description = "not signed in")]
    NotSignedIn(ErrorBody),
    #[response(status = 403, description = "your role does not allow it")]
    Forbidden(ErrorBody),
}

/// Endpoints that read one run.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum ReadsRun {
    #[response(status = 401, description = "not signed in")]
    NotSignedIn(ErrorBody),
    #[response(status = 404, description = "no such run (or not yours to see)")]
    NotFound(ErrorBody),
}

/// Endpoints that change one run, which needs a role in its project.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum ChangesRun {
    #[response(status = 401, description = "not signed in")]
    NotSignedIn(ErrorBody),
    #[response(status = 403, description = "your role does not allow it")]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "no such run (or not yours to see)")]
    NotFound(ErrorBody),
}

/// Endpoints with a body or query whose fields are checked.
#[derive(IntoResponses)]
#[allow(dead_code)]
#[response(status = 422, description = "invalid fields, each named")]
pub(super) struct InvalidFields(ErrorBody);

/// Endpoints that read a JSON body: the answers about the body as a whole (its fields are
/// [`InvalidFields`]), and about a path or query parameter that does not parse.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum ReadsBody {
    #[response(
        status = 400,
        description = "the body is not JSON, or a path or query parameter does not parse (named)"
    )]
    BadRequest(ErrorBody),
    #[response(status = 413, description = "the body is over 64 KiB")]
    TooLarge(ErrorBody),
    #[response(
        status = 415,
        description = "the body is sent as something other than application/json"
    )]
    NotJson(ErrorBody),
}
