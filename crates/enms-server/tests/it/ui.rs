//! The embedded dashboard over real HTTP: client-side routes get the page,
//! assets resolve under the base path with their content hash, and a missing
//! asset gets the error body. (What the pages do is tested in a browser by
//! scripts/browser-test.)

use reqwest::StatusCode;

use crate::common::TestServer;

#[tokio::test]
async fn dashboard_pages_and_hashed_assets_resolve_under_the_base_path() {
    let s = TestServer::with(|c| c.base_path = "/api/analytics".into()).await;
    let root = s.url.trim_end_matches("/api/analytics").to_owned();
    let http = reqwest::Client::new();
    let mut html = String::new();
    for page in ["/ui/anomalies", "/ui/machines/c0000000-0000-0000-0000-000000000001", "/ui/websocket-test"] {
        let resp = http.get(format!("{}{page}", s.url)).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "{page}");
        assert_eq!(resp.headers()["cache-control"], "no-cache");
        html = resp.text().await.expect("html");
        assert!(html.contains(r#"<meta name="enms-base" content="/api/analytics">"#), "{page}");
    }
    let assets: Vec<&str> = html.split('"').filter(|part| part.starts_with("/api/analytics/ui/assets/")).collect();
    for wanted in ["js/app.", "js/realtime.", "vendor/uPlot.iife.min.", "app."] {
        assert!(assets.iter().any(|a| a.contains(wanted)), "no {wanted} among {assets:?}");
    }
    for asset in &assets {
        let resp = http.get(format!("{root}{asset}")).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        let kind = resp.headers()["content-type"].to_str().expect("ascii").to_owned();
        assert!(
            kind.starts_with(if asset.ends_with(".css") { "text/css" } else { "text/javascript" }),
            "{asset}: {kind}"
        );
        assert!(resp.headers()["cache-control"].to_str().expect("ascii").contains("immutable"));
    }
    let (status, body) = s.get("/ui/assets/js/app.0123456789.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "asset_not_found");
    s.stop().await;
}
