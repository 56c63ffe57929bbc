//! A small client of the enms REST API for the CLI commands.

use enms_core::Machine;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status} from {url}: {message}")]
    Api { url: String, status: u16, message: String },
    #[error("unexpected answer from {url}: {source}")]
    Decode { url: String, source: reqwest::Error },
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn machines(&self) -> Result<Vec<Machine>, ClientError> {
        self.get("/api/v1/machines").await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self.http.get(&url).send().await;
        decode(url, resp).await
    }

    pub async fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self.http.post(&url).json(body).send().await;
        decode(url, resp).await
    }

    /// Posts pre-encoded bytes with the given content type.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self.http.post(&url).header("content-type", content_type).body(body).send().await;
        decode(url, resp).await
    }
}

async fn decode<T: DeserializeOwned>(
    url: String,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ClientError> {
    let resp = resp.map_err(|source| ClientError::Unreachable { url: url.clone(), source })?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(ClientError::Api { url, status: status.as_u16(), message });
    }
    resp.json().await.map_err(|source| ClientError::Decode { url, source })
}
