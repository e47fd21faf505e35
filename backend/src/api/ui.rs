//! The built UI (`dist/`, written by `scripts/build-ui`) behind the API: its files, served
//! precompressed (brotli or gzip, as `build-ui` wrote them beside each file) to browsers that
//! accept it, and `index.html` for every other path (the UI routes `/runs/7` itself).
//!
//! Caching: `build-ui` puts the script and the WebAssembly under `/assets/{hash of their
//! contents}/`, so those are cached for a year and never revalidated; everything else
//! (`index.html`, which names the current hash, and `/static/`) is revalidated on each use
//! (`no-cache`; an unchanged file answers 304).

use std::path::Path;

use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use super::cross_site::{protective_headers, ui_content_security_policy};

/// `app` with the UI in `ui_dir` served for every path it does not answer.
pub fn with_ui(app: Router, ui_dir: &Path) -> Router {
    let index = ServeFile::new(ui_dir.join("index.html"))
        .precompressed_br()
        .precompressed_gzip();
    let files = ServeDir::new(ui_dir)
        .precompressed_br()
        .precompressed_gzip()
        .fallback(index);
    // An asset that is not there is a 404, not the page: the page must never be cached for
    // good under an asset's name.
    let assets = ServeDir::new(ui_dir.join("assets"))
        .precompressed_br()
        .precompressed_gzip();
    let ui = Router::new()
        .nest_service("/assets", assets)
        .fallback_service(files)
        .layer(middleware::from_fn(cache_control));
    let page = std::fs::read_to_string(ui_dir.join("index.html")).unwrap_or_default();
    let [nosniff, no_framing, referrer] = protective_headers();
    app.fallback_service(ui)
        // The API's answers carry their own policy; the UI's pages this one.
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            ui_content_security_policy(&page),
        ))
        .layer(nosniff)
        .layer(no_framing)
        .layer(referrer)
}

/// Files whose names hold their contents' hash never change: a year, without asking again.
async fn cache_control(request: Request, next: Next) -> Response {
    let hashed = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let policy = if hashed && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (response.headers_mut()).insert(CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
    use axum::http::StatusCode;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn fetch(app: &Router, path: &str, encodings: &str) -> (Response, Vec<u8>) {
        let request = Request::get(path)
            .header(ACCEPT_ENCODING, encodings)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (Response::from_parts(parts, Body::empty()), bytes)
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        (response.headers().get(name)).map_or("", |v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn files_are_served_precompressed_and_hashed_ones_cached_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let page = "<html><head><script type=\"module\">init();</script></head></html>";
        std::fs::write(dir.path().join("index.html"), page).unwrap();
        let assets = dir.path().join("assets").join("0123abcd");
        std::fs::create_dir_all(&assets).unwrap();
        std::fs::write(assets.join("balancelab.js"), "plain").unwrap();
        std::fs::write(assets.join("balancelab.js.br"), "brotli").unwrap();
        std::fs::write(assets.join("balancelab.js.gz"), "gzip").unwrap();
        std::fs::create_dir_all(dir.path().join("static")).unwrap();
        std::fs::write(dir.path().join("static").join("style.css"), "css").unwrap();
        let api = Router::new().route("/api/health", get(|| async { "ok" }));
        let app = with_ui(api, dir.path());

        let script = "/assets/0123abcd/balancelab.js";
        let (response, body) = fetch(&app, script, "gzip, deflate, br").await;
        assert_eq!(
            (header(&response, "content-encoding"), body.as_slice()),
            ("br", &b"brotli"[..])
        );
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let (response, body) = fetch(&app, script, "gzip").await;
        assert_eq!(
            (header(&response, "content-encoding"), body.as_slice()),
            ("gzip", &b"gzip"[..])
        );
        let (response, body) = fetch(&app, script, "identity").await;
        assert!(response.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(body, b"plain");

        // A client-side route gets the page, revalidated each time, with its policy.
        let (response, body) = fetch(&app, "/runs/7", "br").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, page.as_bytes());
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert!(header(&response, "content-security-policy").contains("'sha256-"));
        // Unhashed files are revalidated; a missing asset is a 404, not the page.
        let (response, _) = fetch(&app, "/static/style.css", "br").await;
        assert_eq!(header(&response, "cache-control"), "no-cache");
        let (response, _) = fetch(&app, "/assets/fedcba98/balancelab.js", "br").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&response, "cache-control"), "no-cache");
        let (response, _) = fetch(&app, "/api/health", "br").await;
        assert!(
            response.headers().get(CACHE_CONTROL).is_none(),
            "the API is not the UI"
        );
    }
}
