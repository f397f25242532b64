//! The ops web page of `payops up`: executions of the local Step Functions, listed and
//! filtered, and one execution as a timeline of its states with the failed state highlighted.
//!
//! Plain HTML, CSS and JavaScript compiled into the binary (see `web_page`); the page reads
//! the JSON of `ops_executions`:
//!
//! - `GET /ops` redirects to `GET /ops/ui`, the page;
//! - `GET /ops/ui/app.js`, `GET /ops/ui/app.css`: its script and style.
//!
//! The page's own state is in the URL fragment (`#/executions/ARN`, `#/?status=FAILED`), so a
//! link to an execution can be shared and the browser's back button works.

use axum::response::Redirect;
use axum::routing::get;

use super::web_page::WebPage;

/// Where the page is served.
pub const UI_PATH: &str = "/ops/ui";

static PAGE: WebPage = WebPage {
    path: UI_PATH,
    index_html: include_str!("index.html"),
    app_js: include_str!("app.js"),
    app_css: include_str!("app.css"),
};

pub fn router() -> axum::Router {
    PAGE.router()
        .route("/ops", get(|| async { Redirect::to(UI_PATH) }))
        .route("/ops/", get(|| async { Redirect::to(UI_PATH) }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_only_its_own_files() {
        super::PAGE.assert_self_contained();
    }
}
