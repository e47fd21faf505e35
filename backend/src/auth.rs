//! Authentication and permission checks.
//!
//! A caller is a user, proven by a token: `Authorization: Bearer <token>` (API tokens, the
//! CLI) or the `balancelab_session` cookie (the browser, including its EventSource). A share
//! link's token (`?share=<token>`) instead opens exactly one run, read-only. Tokens are 32
//! random bytes; only their SHA-256 is stored. Passwords are argon2id hashes.
//!
//! Runs belong to projects; a user's role in the run's project decides what they may do with
//! it. Runs of projects the caller is not in are reported as missing, not forbidden, so their
//! existence does not leak.

use std::num::NonZeroU32;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use balancelab_shared::{Role, Run, User};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::api::{ApiError, AppState};
use crate::store::{Store, StoreError};

pub const SESSION_COOKIE: &str = "balancelab_session";
/// Browser sessions last a week.
pub const SESSION_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// A new random token and the hash under which it is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 accepts any password with a generated salt")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Failed logins allowed per user name: a burst of 5, then one every 12 seconds.
pub fn login_limiter() -> Arc<DefaultKeyedRateLimiter<String>> {
    let quota = Quota::per_minute(NonZeroU32::new(5).expect("5 > 0"));
    Arc::new(RateLimiter::keyed(quota))
}

/// First start: creates the user `admin` (password `password`, or a random one) and the
/// project `default` that older runs join. Returns the password when it made one up, for the
/// caller to print once.
pub async fn bootstrap(
    store: &Store,
    password: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let made_up = password.is_none().then(|| new_token().0[..20].to_owned());
    let password = password
        .or(made_up.as_deref())
        .expect("one of the two is set");
    let Some(admin) = store
        .create_user("admin", &hash_password(password), true)
        .await?
    else {
        // Another process created it first.
        return Ok(None);
    };
    let project = match store.create_project("default", admin.id).await? {
        Some(project) => project.id,
        None => return Ok(made_up),
    };
    let adopted = store.adopt_orphan_runs(project).await?;
    if adopted > 0 {
        tracing::info!(adopted, "earlier runs joined the project `default`");
    }
    Ok(made_up)
}

/// The token a request presents: the bearer token, else the session cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(|t| t.trim().to_owned());
    }
    (headers.get_all(header::COOKIE).iter())
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| {
            let (name, value) = cookie.trim().split_once('=')?;
            (name == SESSION_COOKIE).then(|| value.to_owned())
        })
}

fn share_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "share").then(|| value.to_owned())
    })
}

/// A signed-in user. Extracting it answers 401 when the request has no valid token.
#[derive(Clone, Debug)]
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized(
                "sign in, or send an API token as `Authorization: Bearer`".into(),
            )
        })?;
        match state.store.user_by_token(&token_hash(&token)).await? {
            Some(user) => Ok(Caller(user)),
            None => Err(ApiError::Unauthorized(
                "the token is unknown, revoked or expired; sign in again".into(),
            )),
        }
    }
}

impl Caller {
    /// Checks that the caller has at least `need` in `project`.
    pub async fn require_project(
        &self,
        store: &Store,
        project: i64,
        need: Role,
    ) -> Result<Role, ApiError> {
        match store.role_in(project, self.0.id).await? {
            None => Err(ApiError::NotFound(format!(
                "project {project} does not exist"
            ))),
            Some(role) if role < need => Err(ApiError::Forbidden(format!(
                "this needs the {} role in project {project}; you are {}",
                need.as_str(),
                role.as_str()
            ))),
            Some(role) => Ok(role),
        }
    }
}

/// Who may read a run: a signed-in user, the holder of a share link (read-only, one run), or
/// both: a signed-in user who opens a link reads its run even outside their projects.
#[derive(Clone, Debug)]
pub struct Reader {
    user: Option<Caller>,
    /// The run of the presented share link.
    shared: Option<i64>,
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let shared = match share_token(parts) {
            Some(token) => state.store.shared_run(&token_hash(&token)).await?,
            None => None,
        };
        let user = if presented_token(&parts.headers).is_some() {
            Some(Caller::from_request_parts(parts, state).await?)
        } else {
            None
        };
        match (user, shared) {
            (None, None) if share_token(parts).is_some() => Err(ApiError::Unauthorized(
                "this share link is unknown or was revoked".into(),
            )),
            // No token at all: the signed-out answer, 401.
            (None, None) => Caller::from_request_parts(parts, state)
                .await
                .map(|caller| Reader {
                    user: Some(caller),
                    shared: None,
                }),
            (user, shared) => Ok(Reader { user, shared }),
        }
    }
}

impl Reader {
    /// Run `id`, if the reader may see it (a share link sees its own run only).
    pub async fn run(&self, store: &Store, id: i64) -> Result<Run, ApiError> {
        match (&self.user, self.shared) {
            (_, Some(shared)) if shared == id => stored_run(store, id).await,
            (Some(caller), _) => caller.run(store, id, Role::Viewer).await,
            (None, _) => Err(missing(id)),
        }
    }
}

impl Caller {
    /// Run `id`, if the caller has at least `need` in its project. Runs of other projects
    /// are reported missing; a member with too small a role is refused (403).
    pub async fn run(&self, store: &Store, id: i64, need: Role) -> Result<Run, ApiError> {
        let run = stored_run(store, id).await?;
        match store.role_in(run.project_id, self.0.id).await? {
            None => Err(missing(id)),
            Some(role) if role < need => Err(ApiError::Forbidden(format!(
                "this needs the {} role in the run's project; you are {}",
                need.as_str(),
                role.as_str()
            ))),
            Some(_) => Ok(run),
        }
    }
}

async fn stored_run(store: &Store, id: i64) -> Result<Run, ApiError> {
    store.get_run(id).await?.ok_or_else(|| missing(id))
}

fn missing(run: i64) -> ApiError {
    ApiError::NotFound(format!("run {run} does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horse!", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_stored_as_sha256() {
        let (a, hash) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash, token_hash(&a));
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
