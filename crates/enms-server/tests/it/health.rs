use reqwest::StatusCode;

use crate::common::TestServer;

#[tokio::test]
async fn health_reports_status_version_uptime_and_database() {
    let s = TestServer::start().await;
    let (status, h) = s.get("/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime_s"].as_f64().is_some_and(|u| u >= 0.0));
    assert_eq!(h["database"]["status"], "ok");
    s.stop().await;
}

#[tokio::test]
async fn the_whole_app_can_live_under_a_base_path() {
    let s = TestServer::with(|c| c.base_path = "/api/analytics".into()).await;
    assert!(s.url.ends_with("/api/analytics"));
    assert_eq!(s.get("/api/v1/health").await.0, StatusCode::OK);
    assert_eq!(s.get("/api/v1/machines").await.0, StatusCode::OK);
    let root = s.url.trim_end_matches("/api/analytics").to_owned();
    let http = reqwest::Client::new();
    let outside = http.get(format!("{root}/api/v1/health")).send().await.expect("request");
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    for page in ["/api/analytics/", "/api/analytics/ui/"] {
        let resp = http.get(format!("{root}{page}")).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "{page}");
        assert!(resp.text().await.expect("html").contains("<title>enms</title>"));
    }
    s.stop().await;
}
