//! `/auth` and `/users`: signing in and out, who am I, API tokens, and (admins) new users.

use super::responses::{InvalidFields, NeedsRole, NotSignedIn};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use balancelab_shared::{Credentials, ErrorBody, FieldError, Me, Secret, User};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    presented_token, ApiJson, ApiPath, Caller, ClientAddress, JsonBody, SESSION_COOKIE,
};
use super::{ApiError, AppState};
use crate::auth::{
    hash_password, new_token, token_hash, valid_user_name, verify_sign_in, SESSION_LIFETIME_MS,
};
use crate::login_throttle;
use crate::store::TokenKind;

/// The `/auth` and `/users` routes.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(create_user))
}

/// What a user name may be, as errors say it.
const NAME_RULE: &str = "1 to 64 letters, digits or -_.";

fn session_cookie(token: &str, max_age_s: i64) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}")
}

/// Checks a password and answers with a session token, also set as an HttpOnly cookie for
/// the browser. Failed sign-ins are limited per address and user name (5 in a row, then one
/// per 12 s) and per address (20, then one per 3 s); an unknown name is refused like a wrong
/// password, as slowly.
#[utoipa::path(
    post,
    path = "/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, body = Secret, description = "a session token, also set as the balancelab_session cookie"),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "not a possible user name"),
        (status = 429, body = ErrorBody, description = "too many failed sign-ins from this address"),
    ),
)]
async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let Credentials { name, password } = credentials;
    if !valid_user_name(&name) {
        return Err(ApiError::Invalid(vec![FieldError::new("name", NAME_RULE)]));
    }
    let throttle = &state.login_throttle;
    if let Err(wait) = throttle.check(address, &name) {
        return Err(ApiError::TooManyRequests(format!(
            "too many failed sign-ins: {}; try again in {} s",
            login_throttle::POLICY,
            wait.as_secs() + 1
        )));
    }
    let found = state.store.user_by_name(&name).await?;
    let hash = found.as_ref().map(|(_, hash)| hash.clone());
    // Argon2 takes a core for a good fraction of a second: not on the async runtime.
    let verified = tokio::task::spawn_blocking(move || verify_sign_in(&password, hash.as_deref()))
        .await
        .unwrap_or(false);
    let user = match found {
        Some((user, _)) if verified => user,
        _ => {
            throttle.failed(address, &name);
            return Err(ApiError::Unauthorized(
                "unknown user name or wrong password".into(),
            ));
        }
    };
    throttle.succeeded(address, &name);
    let (token, hash) = new_token();
    let kind = TokenKind::Session;
    let id = (state.store)
        .add_token(user.id, &hash, kind, Some(SESSION_LIFETIME_MS))
        .await?;
    let cookie = session_cookie(&token, SESSION_LIFETIME_MS / 1000);
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(Secret { id, token }),
    ))
}

/// Revokes the token the request presented and clears the cookie.
#[utoipa::path(
    post,
    path = "/auth/logout",
    operation_id = "logout",
    tag = "auth",
    responses(
        (status = 204, description = "the presented token is revoked"),
        NotSignedIn,
    ),
)]
async fn logout(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = presented_token(&headers) {
        state.store.delete_token(&token_hash(&token)).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, session_cookie("", 0))]),
    ))
}

#[utoipa::path(
    get,
    path = "/auth/me",
    operation_id = "me",
    tag = "auth",
    responses(
        (status = 200, body = Me),
        NotSignedIn,
    ),
)]
async fn me(State(state): State<AppState>, Caller(user): Caller) -> Result<Json<Me>, ApiError> {
    let projects = state.store.projects_of(user.id).await?;
    Ok(Json(Me { user, projects }))
}

/// A long-lived API token for scripts and the CLI; shown once.
#[utoipa::path(
    post,
    path = "/auth/tokens",
    operation_id = "create_api_token",
    tag = "auth",
    responses(
        (status = 201, body = Secret, description = "an API token, shown once"),
        NotSignedIn,
    ),
)]
async fn create_token(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<(StatusCode, Json<Secret>), ApiError> {
    let (token, hash) = new_token();
    let id = state
        .store
        .add_token(user.id, &hash, TokenKind::Api, None)
        .await?;
    Ok((StatusCode::CREATED, Json(Secret { id, token })))
}

#[utoipa::path(
    delete,
    path = "/auth/tokens/{id}",
    operation_id = "revoke_api_token",
    tag = "auth",
    params(
        ("id" = i64, Path),
    ),
    responses(
        (status = 204),
        (status = 404, body = ErrorBody),
        NotSignedIn,
    ),
)]
async fn revoke_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if !state.store.revoke_api_token(user.id, id).await? {
        return Err(ApiError::NotFound(format!("you have no API token {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Names are 1 to 64 letters, digits or `-_.`; passwords at least 8 characters.
fn check_credentials(credentials: &Credentials) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if !valid_user_name(&credentials.name) {
        errors.push(FieldError::new("name", NAME_RULE));
    }
    if credentials.password.chars().count() < 8 {
        errors.push(FieldError::new("password", "at least 8 characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(errors))
    }
}

/// Admins create users; each new user gets no project (owners add them to theirs).
#[utoipa::path(
    post,
    path = "/users",
    operation_id = "create_user",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, body = User),
        (status = 409, body = ErrorBody, description = "the name is taken"),
        InvalidFields,
        NeedsRole,
    ),
)]
async fn create_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: JsonBody,
) -> Result<(StatusCode, Json<User>), ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden("only admins create users".into()));
    }
    let credentials: Credentials = body.parse()?;
    check_credentials(&credentials)?;
    let hash = hash_password(&credentials.password);
    match state
        .store
        .create_user(&credentials.name, &hash, false)
        .await?
    {
        Some(user) => Ok((StatusCode::CREATED, Json(user))),
        None => Err(ApiError::Conflict(format!(
            "the user name {:?} is taken",
            credentials.name
        ))),
    }
}
