//! The API's extractors: request bodies and query strings whose rejections are [`ApiError`]s
//! (JSON bodies with the usual status codes), and who is asking — a signed-in [`Caller`], or
//! a [`Reader`] of one run who may instead hold a share link.
//!
//! Handlers take these instead of axum's `Json`, `Query` and `Path`, so that every way a
//! request can be wrong is answered alike.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use balancelab_shared::{FieldError, Role, Run, User};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::stream_slots::Holder;
use super::{ApiError, AppState, BODY_LIMIT};
use crate::auth::{self, AccessError};
use crate::store::Store;

/// The browser's session cookie, which holds the same kind of token as a bearer header.
pub(super) const SESSION_COOKIE: &str = "balancelab_session";

/// A JSON request body of type `T`.
///
/// A value of the wrong type is a 422 naming its field (`method.alpha: invalid type ...`);
/// only text that is not JSON at all is a 400. The body must be sent as
/// `Content-Type: application/json` (or with none): a web page on another site can send a
/// form or plain text to this server without asking, but not JSON.
#[derive(Debug)]
pub(super) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> ApiJson<T> {
    /// Parses `body` as a request body would be, with the same errors.
    pub(super) fn from_bytes(body: &[u8]) -> Result<Self, ApiError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut deserializer)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                // serde_json calls some type errors syntax errors (a null where an enum
                // goes: "expected value"): a body that is valid JSON has a field at fault.
                let is_json = || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
                match inner.classify() {
                    Category::Syntax | Category::Eof | Category::Io if !is_json() => {
                        ApiError::BadRequest(format!("request body is not valid JSON: {inner}"))
                    }
                    _ => ApiError::Invalid(vec![FieldError::new(path, inner.to_string())]),
                }
            })
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = JsonBody::from_request(request, state).await?;
        body.parse().map(ApiJson)
    }
}

/// A request body read but not parsed yet, for handlers that first check the caller's role:
/// who may do something is answered (403, 404) before what they sent is (400, 422).
/// [`JsonBody::parse`] has [`ApiJson`]'s errors.
#[derive(Debug)]
pub(super) struct JsonBody(Bytes);

impl JsonBody {
    /// The body as a `T`.
    pub(super) fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        ApiJson::from_bytes(&self.0).map(|ApiJson(value)| value)
    }

    /// The body as a `T`; an empty body is `None`.
    pub(super) fn parse_optional<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        self.parse().map(Some)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(value) = request.headers().get(header::CONTENT_TYPE) {
            let essence = value.to_str().unwrap_or_default();
            let essence = essence.split(';').next().unwrap_or_default().trim();
            let json = essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json");
            if !json {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "the body is sent as {essence:?}; send it as application/json \
                     (curl: -H 'Content-Type: application/json')"
                )));
            }
        }
        Ok(JsonBody(Bytes::from_request(request, state).await?))
    }
}

impl From<BytesRejection> for ApiError {
    /// A body over the size limit keeps its 413, saying the limit; any other failure to
    /// read it is a 400.
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
                "the request body is over the limit of {} KiB",
                BODY_LIMIT / 1024
            )),
            _ => ApiError::BadRequest(rejection.body_text()),
        }
    }
}

/// Path parameters as `T`; one that does not parse is a 400 naming it and the form it must
/// have (`id: expected a whole number, got "abc"`).
#[derive(Debug)]
pub(super) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let rejection = match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => return Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => e,
            Err(other) => return Err(ApiError::BadRequest(other.body_text())),
        };
        // The route's parameters by name, for the errors of a lone value or a tuple.
        let raw: Vec<(String, String)> = RawPathParams::from_request_parts(parts, state)
            .await
            .map(|params| {
                (params.iter())
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let (key, value, expected) = match rejection.into_kind() {
            ErrorKind::ParseErrorAtKey {
                key,
                value,
                expected_type,
            } => (key, value, expected_type),
            ErrorKind::ParseErrorAtIndex {
                index,
                value,
                expected_type,
            } => {
                let key = raw.get(index).map(|(key, _)| key.clone());
                (
                    key.unwrap_or_else(|| format!("path segment {index}")),
                    value,
                    expected_type,
                )
            }
            ErrorKind::ParseError {
                value,
                expected_type,
            } => {
                let key = (raw.iter())
                    .find(|(_, v)| *v == value)
                    .map(|(key, _)| key.clone());
                (
                    key.unwrap_or_else(|| "path".to_owned()),
                    value,
                    expected_type,
                )
            }
            other => {
                let error = FieldError::new("path", other.to_string());
                return Err(ApiError::BadParameter(error));
            }
        };
        let form = if expected.starts_with('i') || expected.starts_with('u') {
            "a whole number"
        } else {
            expected
        };
        Err(ApiError::BadParameter(FieldError::new(
            key,
            format!("expected {form}, got {value:?}"),
        )))
    }
}

/// The query string, as `T`; a parameter that does not fit `T` is a 400 naming it, with the
/// value it had (`limit: "-1": invalid digit found in string`).
#[derive(Debug)]
pub(super) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = form_urlencoded::parse(query.as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let name = e.path().to_string();
                let given = form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| format!("{value:?}: "))
                    .unwrap_or_default();
                let message = format!("{given}{}", e.into_inner());
                match name.as_str() {
                    // The query as a whole: serde names the parameter missing or unknown in
                    // its message (missing field `keys`).
                    "." | "" => {
                        let named = message.split('`').nth(1).filter(|n| !n.is_empty());
                        let name = named.unwrap_or("query").to_owned();
                        ApiError::BadParameter(FieldError::new(name, message))
                    }
                    _ => ApiError::BadParameter(FieldError::new(name, message)),
                }
            })
    }
}

/// The address the request came from (unspecified when the server was not told, as in
/// tests that call the router directly).
#[derive(Clone, Copy, Debug)]
pub(super) struct ClientAddress(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let connected = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        let address = connected.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientAddress(address))
    }
}

/// The token a request presents: the bearer token, else the session cookie.
pub(super) fn presented_token(headers: &HeaderMap) -> Option<String> {
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

/// The share link's token of `?share=TOKEN`, if the query has one.
fn share_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "share").then(|| value.to_owned())
    })
}

/// The signed-in user making the request. Extracting it answers 401 when the request has
/// no valid token.
#[derive(Clone, Debug)]
pub(super) struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented_token(&parts.headers).ok_or(AccessError::SignedOut)?;
        Ok(Caller(auth::user_of_token(&state.store, &token).await?))
    }
}

impl Caller {
    /// Checks that the caller has at least `need` in `project`; their role if so.
    pub(super) async fn require_project(
        &self,
        store: &Store,
        project: i64,
        need: Role,
    ) -> Result<Role, ApiError> {
        Ok(auth::project_role(store, &self.0, project, need).await?)
    }

    /// Run `id`, if the caller has at least `need` in its project. Runs of other projects
    /// are reported missing (404); a member with too small a role is refused (403).
    pub(super) async fn run(&self, store: &Store, id: i64, need: Role) -> Result<Run, ApiError> {
        Ok(auth::member_run(store, &self.0, id, need).await?)
    }
}

/// Who may read a run: a signed-in user, the holder of a share link (read-only, one run), or
/// both: a signed-in user who opens a link reads its run even outside their projects.
/// Extracting it answers 401 when the request has neither a valid token nor a known link.
#[derive(Clone, Debug)]
pub(super) struct Reader {
    user: Option<User>,
    /// The run of the presented share link.
    shared: Option<i64>,
    /// What was presented, to check again while a stream stays open.
    token: Option<String>,
    link: Option<String>,
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let link = share_token(parts);
        let shared = match &link {
            Some(token) => auth::shared_run(&state.store, token).await?,
            None => None,
        };
        // A token that is presented must be valid, even alongside a valid link.
        let token = presented_token(&parts.headers);
        let user = match &token {
            Some(token) => Some(auth::user_of_token(&state.store, token).await?),
            None => None,
        };
        match (user, shared) {
            (None, None) if link.is_some() => Err(AccessError::UnknownShareLink.into()),
            (None, None) => Err(AccessError::SignedOut.into()),
            (user, shared) => Ok(Reader {
                user,
                shared,
                token,
                link,
            }),
        }
    }
}

impl Reader {
    /// Run `id`, if the reader may see it (a share link sees its own run only).
    pub(super) async fn run(&self, store: &Store, id: i64) -> Result<Run, ApiError> {
        Ok(auth::readable_run(store, self.user.as_ref(), self.shared, id).await?)
    }

    /// Who holds the streams this reader opens: the signed-in user, else the link.
    pub(super) fn holder(&self) -> Holder {
        match (&self.user, &self.link) {
            (Some(user), _) => Holder::User(user.id),
            (None, link) => Holder::Link(link.clone().unwrap_or_default()),
        }
    }

    /// Resolves once this reader may no longer read run `id`: its link revoked, its token
    /// revoked or expired (signed out), its membership removed. Checked every
    /// [`ACCESS_RECHECK`] (see [`access_rechecks`]); an open stream ends then.
    pub(super) async fn access_ends(self, store: Store, id: i64) {
        let mut rechecks = access_rechecks();
        loop {
            rechecks.tick().await;
            if !self.still_reads(&store, id).await {
                return;
            }
        }
    }

    /// Whether what this reader presented still lets it read run `id`. A store that cannot
    /// answer now ends nothing.
    async fn still_reads(&self, store: &Store, id: i64) -> bool {
        let shared = match &self.link {
            Some(link) => match auth::shared_run(store, link).await {
                Ok(shared) => shared,
                Err(AccessError::Store(_)) => return true,
                Err(_) => None,
            },
            None => None,
        };
        let user = match &self.token {
            Some(token) => match auth::user_of_token(store, token).await {
                Ok(user) => Some(user),
                Err(AccessError::Store(_)) => return true,
                Err(_) => return false,
            },
            None => None,
        };
        match auth::readable_run(store, user.as_ref(), shared, id).await {
            Ok(_) | Err(AccessError::Store(_)) => true,
            Err(_) => false,
        }
    }
}

/// How often an open stream checks that its reader may still read it.
const ACCESS_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Ticks every [`ACCESS_RECHECK`], the first time after a random part of it: streams opened
/// together (a team opening a shared run) do not all query the store at the same moment,
/// which would hold up the delivery of their events.
pub(super) fn access_rechecks() -> tokio::time::Interval {
    let first = ACCESS_RECHECK.mul_f64(rand::random::<f64>());
    let start = tokio::time::Instant::now() + first;
    let mut rechecks = tokio::time::interval_at(start, ACCESS_RECHECK);
    rechecks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rechecks
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::response::IntoResponse;

    use super::*;

    fn post(body: impl Into<Body>) -> Request {
        Request::post("/").body(body.into()).unwrap()
    }

    async fn parse(body: impl Into<Body>) -> Result<Vec<u32>, ApiError> {
        let parsed = <ApiJson<Vec<u32>> as FromRequest<()>>::from_request(post(body), &());
        parsed.await.map(|ApiJson(value)| value)
    }

    #[tokio::test]
    async fn bodies_need_no_content_type_and_errors_keep_their_status() {
        assert_eq!(parse("[1, 2]").await.unwrap(), [1, 2]);
        match parse(r#"[1, "x"]"#).await {
            Err(ApiError::Invalid(fields)) => assert_eq!(fields[0].field, "[1]"),
            other => panic!("a type error is a 422 naming the field: {other:?}"),
        }
        match parse("[1,").await {
            Err(ApiError::BadRequest(message)) => assert!(message.contains("not valid JSON")),
            other => panic!("text that is not JSON is a 400: {other:?}"),
        }
        // Over axum's default limit (the app sets a smaller one).
        match parse(vec![b' '; 3 << 20]).await {
            Err(error @ ApiError::PayloadTooLarge(_)) => assert_eq!(
                error.into_response().status(),
                StatusCode::PAYLOAD_TOO_LARGE
            ),
            other => panic!("a body over the limit is a 413: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_deferred_body_parses_alike_and_may_be_empty() {
        let body = |text: &'static str| JsonBody::from_request(post(text), &());
        let empty = body("").await.unwrap();
        assert_eq!(empty.parse_optional::<Vec<u32>>().unwrap(), None);
        let given = body("[3]").await.unwrap();
        assert_eq!(given.parse_optional::<Vec<u32>>().unwrap(), Some(vec![3]));
        match body(r#"[1, "x"]"#).await.unwrap().parse::<Vec<u32>>() {
            Err(ApiError::Invalid(fields)) => assert_eq!(fields[0].field, "[1]"),
            other => panic!("a type error is a 422 naming the field: {other:?}"),
        }
    }
}
