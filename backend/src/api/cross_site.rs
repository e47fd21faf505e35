//! What keeps other web sites out: a request from another site's page may not change
//! anything (its session cookie would otherwise act for the user), the API's answers may not
//! be framed or sniffed as another type, the UI runs only its own scripts, and share tokens
//! stay out of the logs.

use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

use super::ApiError;

/// Refuses a state-changing request (any method but GET, HEAD, OPTIONS) that a browser sent
/// from another site's page. SameSite cookies alone let another port of the same host through.
pub(super) async fn refuse_cross_site_changes(
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !request.method().is_safe() {
        if let Some(why) = cross_site(request.headers()) {
            return Err(ApiError::Forbidden(why));
        }
    }
    Ok(next.run(request).await)
}

/// Why the request comes from another site, if it does. Browsers say where a request comes
/// from in `Sec-Fetch-Site`; older ones only in `Origin`, compared here with the host the
/// request was sent to. Requests with neither (scripts, curl) are not a browser's.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(HeaderName::from_static("sec-fetch-site")) {
        return match site {
            "same-origin" | "none" => None,
            other => Some(format!(
                "a {other} request may not change anything here (open BalanceLab itself)"
            )),
        };
    }
    let origin = text(header::ORIGIN)?;
    let host = text(header::HOST).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    (origin_host != host).then(|| format!("a request from {origin} may not change anything here"))
}

/// Headers every answer carries unless it set its own: never framed, never sniffed as
/// another type than it says, no referrer to other sites.
pub fn protective_headers() -> [SetResponseHeaderLayer<HeaderValue>; 3] {
    [
        SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ),
        SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

/// The API's content security policy: its answers are data, never a page.
pub(super) fn api_content_security_policy() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    )
}

/// The UI's content security policy, for its `index.html`: scripts from this site and the
/// page's own inline scripts (by their SHA-256, as the build wrote them), WebAssembly,
/// connections to this site only, no framing.
pub fn ui_content_security_policy(index_html: &str) -> HeaderValue {
    let hashes: String = inline_scripts(index_html)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
            format!(" 'sha256-{encoded}'")
        })
        .collect();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).expect("hashes are base64")
}

/// The contents of the `<script>` elements of `html` that have no `src`.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script").skip(1).filter_map(|rest| {
        let (attributes, rest) = rest.split_once('>')?;
        let (content, _) = rest.split_once("</script>")?;
        (!attributes.contains("src=")).then_some(content)
    })
}

/// `uri` as the logs show it: the values of `share` and `token` parameters hidden.
pub(super) fn redacted(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let query: Vec<String> = (query.split('&'))
        .map(|pair| match pair.split_once('=') {
            Some((name @ ("share" | "token"), _)) => format!("{name}=(hidden)"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        (pairs.iter())
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn other_sites_are_told_apart_from_this_one() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        let same = [("origin", "http://lab:8080"), ("host", "lab:8080")];
        assert!(cross_site(&headers(&same)).is_none());
        let other_port = [("origin", "http://lab:9000"), ("host", "lab:8080")];
        assert!(cross_site(&headers(&other_port)).is_some());
        assert!(cross_site(&headers(&[("origin", "null"), ("host", "lab")])).is_some());
        assert!(cross_site(&headers(&[])).is_none(), "scripts send neither");
    }

    #[test]
    fn the_ui_policy_allows_exactly_the_page_inline_script() {
        let html = r#"<script src="/x.js"></script><script type="module">init();</script>"#;
        let policy = ui_content_security_policy(html);
        let policy = policy.to_str().unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"init();"));
        assert!(policy.contains(&format!("'sha256-{expected}'")), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 1, "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn share_tokens_are_hidden_in_logged_uris() {
        let uri: Uri = "/api/runs/3/events?share=s3cret&after=5".parse().unwrap();
        assert_eq!(redacted(&uri), "/api/runs/3/events?share=(hidden)&after=5");
        assert_eq!(redacted(&"/api/runs".parse().unwrap()), "/api/runs");
    }
}
