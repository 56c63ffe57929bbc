//! A small client of the enms REST API for the CLI commands.

use enms_core::Machine;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::ClientArgs;

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
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), token: None }
    }

    pub fn from_args(args: &ClientArgs) -> Self {
        Self { token: args.token.clone(), ..Self::new(&args.server) }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The WebSocket URL of `path` (http → ws, https → wss).
    pub fn ws_url(&self, path: &str) -> String {
        let url = self.url(path);
        match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => url.replacen("http://", "ws://", 1),
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// A machine by name (case-insensitive) or id.
    pub async fn find_machine(&self, which: &str) -> Result<Machine, String> {
        let all = self.machines().await.map_err(|e| e.to_string())?;
        all.into_iter()
            .find(|m| m.id.to_string() == which || m.name.eq_ignore_ascii_case(which))
            .ok_or_else(|| format!("no machine named or with id {which:?} on {}", self.base))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn machines(&self) -> Result<Vec<Machine>, ClientError> {
        self.get("/api/v1/machines").await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self.request(reqwest::Method::GET, &url).send().await;
        decode(url, resp).await
    }

    pub async fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self.request(reqwest::Method::POST, &url).json(body).send().await;
        decode(url, resp).await
    }

    /// A GET whose body the caller reads in chunks; an error status is
    /// answered as [`ClientError::Api`] with the server's message.
    pub async fn get_stream(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Response, ClientError> {
        let url = reqwest::Url::parse_with_params(&self.url(path), query.iter().map(|(k, v)| (*k, v.as_str())))
            .map(String::from)
            .unwrap_or_else(|_| self.url(path));
        let resp = self
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url: url.clone(), source })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(api_error(url, resp).await)
    }

    /// Posts pre-encoded bytes with the given content type.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp =
            self.request(reqwest::Method::POST, &url).header("content-type", content_type).body(body).send().await;
        decode(url, resp).await
    }
}

async fn decode<T: DeserializeOwned>(
    url: String,
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ClientError> {
    let resp = resp.map_err(|source| ClientError::Unreachable { url: url.clone(), source })?;
    if !resp.status().is_success() {
        return Err(api_error(url, resp).await);
    }
    resp.json().await.map_err(|source| ClientError::Decode { url, source })
}

/// An error answer, with the message of its structured body when it has one.
async fn api_error(url: String, resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    ClientError::Api { url, status, message }
}
