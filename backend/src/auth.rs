//! Authentication and permission checks, without HTTP.
//!
//! A caller is a user, proven by a token (the API reads it from the `Authorization` header
//! or the session cookie). A share link's token instead opens exactly one run, read-only.
//! Tokens are 32 random bytes; only their SHA-256 is stored. Passwords are argon2id hashes.
//!
//! Runs belong to projects; a user's role in the run's project decides what they may do with
//! it. Runs of projects the caller is not in are reported as missing, not forbidden, so their
//! existence does not leak.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use balancelab_shared::{Role, Run, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Browser sessions last a week.
pub(crate) const SESSION_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

/// Why a caller may not do what they asked. The messages are shown to the caller.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    /// The request presented no token at all.
    #[error("sign in, or send an API token as `Authorization: Bearer`")]
    SignedOut,
    /// The token presented belongs to no one (never issued, revoked or expired).
    #[error("the token is unknown, revoked or expired; sign in again")]
    UnknownToken,
    /// The share link presented is unknown or revoked, and no user token came with it.
    #[error("this share link is unknown or was revoked")]
    UnknownShareLink,
    /// The project does not exist, or the caller is not in it (the same answer, so that
    /// projects do not leak).
    #[error("project {0} does not exist")]
    NoSuchProject(i64),
    /// The run does not exist, or the caller may not see it (the same answer, so that runs
    /// do not leak).
    #[error("run {0} does not exist")]
    NoSuchRun(i64),
    /// A member of the project whose role is too small.
    #[error("this needs the {} role in project {project}; you are {}", .need.as_str(), .has.as_str())]
    ProjectRole {
        /// The project asked about.
        project: i64,
        /// The role the action needs.
        need: Role,
        /// The caller's role.
        has: Role,
    },
    /// A member of the run's project whose role is too small.
    #[error("this needs the {} role in the run's project; you are {}", .need.as_str(), .has.as_str())]
    RunRole {
        /// The role the action needs.
        need: Role,
        /// The caller's role.
        has: Role,
    },
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new random token and the hash under which it is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = token_hash(&token);
    (token, hash)
}

/// The SHA-256 of a token, in hex: what the store keeps instead of the token.
pub(crate) fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An argon2id hash of `password` with a fresh salt, as a PHC string.
pub(crate) fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 accepts any password with a generated salt")
        .to_string()
}

/// Whether `password` matches `hash` (a PHC string); false for a malformed hash.
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Checks `password` for a sign-in as a user whose hash is `hash`, or as a user that does
/// not exist (`None`: checked against a made-up hash, so that an unknown name takes as long
/// to refuse as a wrong password and the answer does not tell which names exist).
pub(crate) fn verify_sign_in(password: &str, hash: Option<&str>) -> bool {
    static UNKNOWN_USER: OnceLock<String> = OnceLock::new();
    match hash {
        Some(hash) => verify_password(password, hash),
        None => {
            let made_up = UNKNOWN_USER.get_or_init(|| hash_password("no such user"));
            verify_password(password, made_up);
            false
        }
    }
}

/// Whether `name` can be a user name: 1 to 64 ASCII letters, digits or `-_.`.
pub(crate) fn valid_user_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    !name.is_empty() && name.len() <= 64 && name.chars().all(allowed)
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

/// The user `token` belongs to.
pub(crate) async fn user_of_token(store: &Store, token: &str) -> Result<User, AccessError> {
    (store.user_by_token(&token_hash(token)).await?).ok_or(AccessError::UnknownToken)
}

/// The run a share link's token opens; `None` when the link is unknown or revoked.
pub(crate) async fn shared_run(store: &Store, token: &str) -> Result<Option<i64>, AccessError> {
    Ok(store.shared_run(&token_hash(token)).await?)
}

/// `user`'s role in `project`, if it is at least `need`.
pub(crate) async fn project_role(
    store: &Store,
    user: &User,
    project: i64,
    need: Role,
) -> Result<Role, AccessError> {
    match store.role_in(project, user.id).await? {
        None => Err(AccessError::NoSuchProject(project)),
        Some(has) if has < need => Err(AccessError::ProjectRole { project, need, has }),
        Some(role) => Ok(role),
    }
}

/// Run `id`, if `user` has at least `need` in its project. Runs of other projects are
/// reported missing; a member with too small a role is refused.
pub(crate) async fn member_run(
    store: &Store,
    user: &User,
    id: i64,
    need: Role,
) -> Result<Run, AccessError> {
    let run = stored_run(store, id).await?;
    match store.role_in(run.project_id, user.id).await? {
        None => Err(AccessError::NoSuchRun(id)),
        Some(has) if has < need => Err(AccessError::RunRole { need, has }),
        Some(_) => Ok(run),
    }
}

/// Run `id`, if its reader may see it: through the share link they hold (`shared`, which
/// opens that run only, even to a user outside its project), else as a member of its
/// project.
pub(crate) async fn readable_run(
    store: &Store,
    user: Option<&User>,
    shared: Option<i64>,
    id: i64,
) -> Result<Run, AccessError> {
    match (user, shared) {
        (_, Some(shared)) if shared == id => stored_run(store, id).await,
        (Some(user), _) => member_run(store, user, id, Role::Viewer).await,
        (None, _) => Err(AccessError::NoSuchRun(id)),
    }
}

async fn stored_run(store: &Store, id: i64) -> Result<Run, AccessError> {
    store.get_run(id).await?.ok_or(AccessError::NoSuchRun(id))
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
