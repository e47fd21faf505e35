//! `/auth` and `/users`: signing in and out, who am I, sessions and API tokens, password
//! changes, and (admins) users: creating, listing, disabling, revoking their tokens.

use super::responses::{InvalidFields, NeedsRole, NotSignedIn, ReadsBody};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use balancelab_shared::{
    AuditAction, Credentials, ErrorBody, FieldError, Me, PasswordChange, Secret, TokenInfo,
    TokenRequest, User, UserChange,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::RequestId;
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
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(change_password))
        .routes(routes!(create_user, list_users))
        .routes(routes!(change_user))
        .routes(routes!(revoke_user_tokens))
}

/// Days an API token works unless its maker says otherwise, and the most they may say.
const DEFAULT_TOKEN_DAYS: u32 = 90;
const MAX_TOKEN_DAYS: u32 = 3650;
const MAX_LABEL_CHARS: usize = 100;

/// What a user name may be, as errors say it.
const NAME_RULE: &str = "1 to 64 letters, digits or -_.";

/// The session cookie; `Secure` (sent over HTTPS only) when the server says so
/// (`--secure-cookies`) or the request came through a proxy that terminated TLS.
fn session_cookie(token: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    )
}

/// Whether the browser reached a proxy in front of this server over HTTPS
/// (`X-Forwarded-Proto: https` or `Forwarded: proto=https`). A client that claims so
/// falsely only makes its own cookie unusable over plain HTTP.
fn behind_tls(headers: &HeaderMap) -> bool {
    let says = |name: &str, https: &dyn Fn(&str) -> bool| {
        (headers.get_all(name).iter()).any(|v| v.to_str().is_ok_and(https))
    };
    says("x-forwarded-proto", &|v| {
        v.split(',')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }) || says("forwarded", &|v| {
        (v.split([';', ','])).any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
    })
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
        ReadsBody,
        (status = 200, body = Secret, description = "a session token, also set as the balancelab_session cookie"),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "not a possible user name"),
        (status = 429, body = ErrorBody, description = "too many failed sign-ins from this address"),
    ),
)]
async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
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
        Some((user, _)) if verified && user.disabled => {
            return Err(ApiError::Forbidden(
                "this account is disabled; an admin can enable it".into(),
            ));
        }
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
    let secure = state.secure_cookies || behind_tls(&headers);
    let cookie = session_cookie(&token, SESSION_LIFETIME_MS / 1000, secure);
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
        AppendHeaders([(
            header::SET_COOKIE,
            session_cookie("", 0, state.secure_cookies || behind_tls(&headers)),
        )]),
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

/// An API token for scripts and the CLI, shown once; it works for 90 days unless the body
/// says otherwise (`expires_in_days`, up to 3650).
#[utoipa::path(
    post,
    path = "/auth/tokens",
    operation_id = "create_api_token",
    tag = "auth",
    request_body(content = Option<TokenRequest>, description = "may be left out"),
    responses(
        ReadsBody,
        (status = 201, body = Secret, description = "an API token, shown once"),
        InvalidFields,
        NotSignedIn,
    ),
)]
async fn create_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    request_id: RequestId,
    body: JsonBody,
) -> Result<(StatusCode, Json<Secret>), ApiError> {
    let request: TokenRequest = body.parse_optional()?.unwrap_or_default();
    let days = request.expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
    let mut errors = Vec::new();
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        errors.push(FieldError::new(
            "expires_in_days",
            format!("must be 1 to {MAX_TOKEN_DAYS}, got {days}"),
        ));
    }
    let label = request.label.as_deref().map(str::trim);
    if label.is_some_and(|l| l.chars().count() > MAX_LABEL_CHARS || l.chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "label",
            format!("at most {MAX_LABEL_CHARS} characters, no control characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let (token, hash) = new_token();
    let lifetime_ms = i64::from(days) * 24 * 3600 * 1000;
    let label = label.filter(|l| !l.is_empty());
    let id = (state.store)
        .add_labelled_token(user.id, &hash, TokenKind::Api, Some(lifetime_ms), label)
        .await?;
    let detail = format!(
        "API token {id}, {days} days, {}",
        label.unwrap_or("no label")
    );
    let action = AuditAction::TokenCreated;
    (request_id.record(&state.store, &user, action, (None, None), detail)).await;
    Ok((StatusCode::CREATED, Json(Secret { id, token })))
}

/// The caller's sessions and API tokens that still work, newest first, without secrets.
#[utoipa::path(
    get,
    path = "/auth/tokens",
    operation_id = "list_tokens",
    tag = "auth",
    responses(
        (status = 200, body = Vec<TokenInfo>),
        NotSignedIn,
    ),
)]
async fn list_tokens(
    State(state): State<AppState>,
    Caller(user): Caller,
    headers: HeaderMap,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let presented = presented_token(&headers).map(|t| token_hash(&t));
    let tokens = (state.store)
        .tokens_of(user.id, presented.as_deref().unwrap_or_default())
        .await?;
    Ok(Json(tokens))
}

/// Revokes one of the caller's sessions or API tokens.
#[utoipa::path(
    delete,
    path = "/auth/tokens/{id}",
    operation_id = "revoke_token",
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
    request_id: RequestId,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if !state.store.revoke_token(user.id, id).await? {
        return Err(ApiError::NotFound(format!(
            "you have no session or token {id}"
        )));
    }
    let (action, detail) = (AuditAction::TokenRevoked, format!("token {id}"));
    (request_id.record(&state.store, &user, action, (None, None), detail)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password, given the current one; every other session and API token
/// of theirs is revoked (the one this request presented stays).
#[utoipa::path(
    post,
    path = "/auth/password",
    operation_id = "change_password",
    tag = "auth",
    request_body = PasswordChange,
    responses(
        ReadsBody,
        (status = 204, description = "changed; the caller's other sessions and tokens are revoked"),
        (status = 403, body = ErrorBody, description = "the current password is wrong"),
        InvalidFields,
        NotSignedIn,
    ),
)]
async fn change_password(
    State(state): State<AppState>,
    Caller(user): Caller,
    request_id: RequestId,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    ApiJson(change): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    if change.new.chars().count() < 8 {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "new",
            "at least 8 characters",
        )]));
    }
    // Guessing the current password through this door is limited as sign-ins are.
    let throttle = &state.login_throttle;
    if let Err(wait) = throttle.check(address, &user.name) {
        return Err(ApiError::TooManyRequests(format!(
            "too many wrong passwords: {}; try again in {} s",
            login_throttle::POLICY,
            wait.as_secs() + 1
        )));
    }
    let hash = state.store.user_by_name(&user.name).await?.map(|(_, h)| h);
    let PasswordChange { current, new } = change;
    let checked = tokio::task::spawn_blocking(move || {
        verify_sign_in(&current, hash.as_deref()).then(|| hash_password(&new))
    })
    .await
    .unwrap_or(None);
    let Some(new_hash) = checked else {
        throttle.failed(address, &user.name);
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    };
    throttle.succeeded(address, &user.name);
    let keep = presented_token(&headers).map(|t| token_hash(&t));
    (state.store)
        .set_password(user.id, &new_hash, keep.as_deref().unwrap_or_default())
        .await?;
    let (action, detail) = (
        AuditAction::PasswordChanged,
        "other sessions and tokens revoked",
    );
    (request_id.record(&state.store, &user, action, (None, None), detail)).await;
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

/// Every user (admins only).
#[utoipa::path(
    get,
    path = "/users",
    operation_id = "list_users",
    tag = "auth",
    responses(
        (status = 200, body = Vec<User>),
        NeedsRole,
    ),
)]
async fn list_users(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<User>>, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden("only admins list users".into()));
    }
    Ok(Json(state.store.users().await?))
}

/// Disables a user (they cannot sign in; every session and token of theirs is revoked at
/// once, and their open live streams close within seconds) or enables them again. Admins
/// only; an admin cannot disable themselves.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    operation_id = "change_user",
    tag = "auth",
    params(("id" = i64, Path)),
    request_body = UserChange,
    responses(
        ReadsBody,
        (status = 200, body = User),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "an admin disabling themselves"),
        NeedsRole,
    ),
)]
async fn change_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    request_id: RequestId,
    ApiPath(id): ApiPath<i64>,
    ApiJson(change): ApiJson<UserChange>,
) -> Result<Json<User>, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden(
            "only admins disable or enable users".into(),
        ));
    }
    if change.disabled && id == caller.id {
        return Err(ApiError::Conflict(
            "you cannot disable yourself (another admin can)".into(),
        ));
    }
    match state.store.set_disabled(id, change.disabled).await? {
        Some(user) => {
            let action = match user.disabled {
                true => AuditAction::UserDisabled,
                false => AuditAction::UserEnabled,
            };
            let detail = format!("{:?}", user.name);
            (request_id.record(&state.store, &caller, action, (None, None), detail)).await;
            Ok(Json(user))
        }
        None => Err(ApiError::NotFound(format!("there is no user {id}"))),
    }
}

/// Revokes every session and API token of a user (admins only): for a lost laptop or a
/// leaked token, without disabling the account.
#[utoipa::path(
    delete,
    path = "/users/{id}/tokens",
    operation_id = "revoke_user_tokens",
    tag = "auth",
    params(("id" = i64, Path)),
    responses(
        (status = 204),
        NeedsRole,
    ),
)]
async fn revoke_user_tokens(
    State(state): State<AppState>,
    Caller(caller): Caller,
    request_id: RequestId,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden(
            "only admins revoke others' tokens".into(),
        ));
    }
    let Some(revoked) = state.store.revoke_all_tokens(id).await? else {
        return Err(ApiError::NotFound(format!("there is no user {id}")));
    };
    let detail = format!("user {id}: {revoked} sessions and tokens");
    let action = AuditAction::UserTokensRevoked;
    (request_id.record(&state.store, &caller, action, (None, None), detail)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Admins create users; each new user gets no project (owners add them to theirs).
#[utoipa::path(
    post,
    path = "/users",
    operation_id = "create_user",
    tag = "auth",
    request_body = Credentials,
    responses(
        ReadsBody,
        (status = 201, body = User),
        (status = 409, body = ErrorBody, description = "the name is taken"),
        InvalidFields,
        NeedsRole,
    ),
)]
async fn create_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    request_id: RequestId,
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
        Some(user) => {
            let (action, detail) = (AuditAction::UserCreated, format!("{:?}", user.name));
            (request_id.record(&state.store, &caller, action, (None, None), detail)).await;
            Ok((StatusCode::CREATED, Json(user)))
        }
        None => Err(ApiError::Conflict(format!(
            "the user name {:?} is taken",
            credentials.name
        ))),
    }
}
