//! The page served at `/`: a small embedded status board listing machines and
//! their latest readings. The full dashboard replaces it.

use axum::response::Html;

pub async fn index() -> Html<&'static str> {
    Html(include_str!("../../assets/index.html"))
}
