//! The ops web page of `payops up`: executions of the local Step Functions, listed and
//! filtered, and one execution as a timeline of its states with the failed state highlighted.
//!
//! Plain HTML, CSS and JavaScript compiled into the binary (no build step, nothing fetched
//! from elsewhere); the page reads the JSON of `ops_executions`:
//!
//! - `GET /ops` redirects to `GET /ops/ui`, the page;
//! - `GET /ops/ui/app.js`, `GET /ops/ui/app.css`: its script and style.
//!
//! The page's own state is in the URL fragment (`#/executions/ARN`, `#/?status=FAILED`), so a
//! link to an execution can be shared and the browser's back button works.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Where the page is served.
pub const UI_PATH: &str = "/ops/ui";

/// Only the page's own files run and load; the data comes from the same origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub fn router() -> axum::Router {
    axum::Router::new()
        .route("/ops", get(|| async { Redirect::to(UI_PATH) }))
        .route("/ops/", get(|| async { Redirect::to(UI_PATH) }))
        .route(
            UI_PATH,
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ops/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ops/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change with the binary; a stale copy after an upgrade would confuse.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(INDEX_HTML.contains(r#"src="/ops/ui/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="/ops/ui/app.css""#));
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://"), "no external resource");
            assert!(!text.contains("https://"), "no external resource");
        }
        // The script builds the page from data with textContent only: no HTML injection.
        assert!(!APP_JS.contains("innerHTML"));
    }
}
