//! HR's payroll page, served by `payops up` (and deployable as the three static files): upload
//! a file, see its summary sortable by source or branch and its bad rows, approve it, watch
//! the batch list and a batch's progress, download its three CSV reports. It reads the
//! payroll API of the same origin (`payops_app::payroll::router`).
//!
//! - `GET /hr` redirects to `GET /hr/payroll`, the page;
//! - `GET /hr/payroll/app.js`, `GET /hr/payroll/app.css`: its script and style.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Where the page is served.
pub const HR_PAGE_PATH: &str = "/hr/payroll";

/// Only the page's own files run and load; the data comes from the same origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub fn router() -> axum::Router {
    axum::Router::new()
        .route("/hr", get(|| async { Redirect::to(HR_PAGE_PATH) }))
        .route(
            HR_PAGE_PATH,
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/hr/payroll/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/hr/payroll/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
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
    fn the_page_loads_only_its_own_files_and_never_builds_html_from_data() {
        assert!(INDEX_HTML.contains(r#"src="/hr/payroll/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="/hr/payroll/app.css""#));
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://"), "no external resource");
            assert!(!text.contains("https://"), "no external resource");
        }
        assert!(!APP_JS.contains("innerHTML"));
    }
}
