//! HR's payroll page, served by `payops up` (and deployable as the three static files): upload
//! a file, see its summary sortable by source or branch and its bad rows, approve it, watch
//! the batch list and a batch's progress, download its three CSV reports. It reads the
//! payroll API of the same origin (`payops_app::payroll::router`).
//!
//! - `GET /hr` redirects to `GET /hr/payroll`, the page;
//! - `GET /hr/payroll/app.js`, `GET /hr/payroll/app.css`: its script and style.

use axum::response::Redirect;
use axum::routing::get;

use super::web_page::WebPage;

/// Where the page is served.
pub const HR_PAGE_PATH: &str = "/hr/payroll";

static PAGE: WebPage = WebPage {
    path: HR_PAGE_PATH,
    index_html: include_str!("index.html"),
    app_js: include_str!("app.js"),
    app_css: include_str!("app.css"),
};

pub fn router() -> axum::Router {
    PAGE.router()
        .route("/hr", get(|| async { Redirect::to(HR_PAGE_PATH) }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_loads_only_its_own_files_and_never_builds_html_from_data() {
        super::PAGE.assert_self_contained();
    }
}
