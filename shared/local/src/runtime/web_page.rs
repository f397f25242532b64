//! A web page of `payops up` (the ops page, HR's payroll page): three files compiled into the
//! binary — no build step, nothing fetched from elsewhere — served under one path with a
//! strict Content-Security-Policy. The page reads the JSON APIs of the same origin.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The files of one page: `PATH` serves `index_html`, `PATH/app.js` and `PATH/app.css` the rest.
pub struct WebPage {
    pub path: &'static str,
    pub index_html: &'static str,
    pub app_js: &'static str,
    pub app_css: &'static str,
}

/// Only the page's own files run and load; the data comes from the same origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

impl WebPage {
    pub fn router(&'static self) -> axum::Router {
        axum::Router::new()
            .route(
                self.path,
                get(move || async move { asset("text/html; charset=utf-8", self.index_html) }),
            )
            .route(
                &format!("{}/app.js", self.path),
                get(move || async move { asset("text/javascript; charset=utf-8", self.app_js) }),
            )
            .route(
                &format!("{}/app.css", self.path),
                get(move || async move { asset("text/css; charset=utf-8", self.app_css) }),
            )
    }

    /// Panics (for tests) unless the page loads only its own two files, names no other
    /// origin, and its script never builds HTML from data (`textContent` only, so nothing
    /// from the API can inject markup).
    pub fn assert_self_contained(&self) {
        let script = format!(r#"src="{}/app.js""#, self.path);
        let style = format!(r#"href="{}/app.css""#, self.path);
        assert!(
            self.index_html.contains(&script),
            "{} loads {script}",
            self.path
        );
        assert!(
            self.index_html.contains(&style),
            "{} loads {style}",
            self.path
        );
        for text in [self.index_html, self.app_js, self.app_css] {
            assert!(!text.contains("http://"), "no external resource");
            assert!(!text.contains("https://"), "no external resource");
        }
        assert!(!self.app_js.contains("innerHTML"));
    }
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
