//! Sending one notification through one channel, and what came of it.
//!
//! Webhooks (all four HTTP kinds) are POSTed with the headers a receiver
//! needs to trust and de-duplicate them:
//! - `Idempotency-Key`: the notification's key, the same on every retry;
//! - `X-Enms-Delivery`: the notification's id;
//! - `X-Enms-Timestamp` and `X-Enms-Signature: sha256=<hex>`, the
//!   HMAC-SHA256 of `<timestamp>.<body>` under the channel's secret, when
//!   it has one (the timestamp lets a receiver refuse old replays).
//!
//! A 2xx answer delivers. 408, 425, 429, 5xx, a timeout or a refused
//! connection are tried again with backoff; any other 4xx is the
//! receiver refusing the payload for good, so it fails at once.
//!
//! E-mail goes through SMTP (lettre); its Message-ID is derived from the
//! key, so a mail system that drops duplicate Message-IDs drops a retry.
//! SMTP 5xx replies fail at once, 4xx and connection errors are retried.

use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;

use crate::config::{Channel, Email, Security, Webhook};
use crate::render;
use enms_core::setting::secret;
use enms_store::NotificationRecord;

/// What one try came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    /// Worth trying again (meaningless when `ok`).
    pub retry: bool,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration: Duration,
}

/// A channel ready to send: its secrets read, its client built.
pub enum Sender {
    Http { kind: &'static str, url: String, secret: Option<String>, client: reqwest::Client },
    Email { mail: Email, password: Option<String> },
}

impl Sender {
    /// Reads the channel's secrets (checked by `validate` before).
    pub fn new(channel: &Channel) -> Result<Self, String> {
        match channel {
            Channel::Webhook(w) | Channel::Alertmanager(w) | Channel::Slack(w) | Channel::Teams(w) => Ok(Self::Http {
                kind: channel.kind(),
                url: url(w)?,
                secret: secret(&w.secret_env, &w.secret_file)?,
                client: client(w)?,
            }),
            Channel::Email(e) => {
                Ok(Self::Email { mail: e.clone(), password: secret(&e.password_env, &e.password_file)? })
            }
        }
    }

    /// Where it sends, without secrets: a URL's scheme and host, or the
    /// mail's recipients.
    pub fn target(&self) -> String {
        match self {
            Self::Http { url, .. } => reqwest::Url::parse(url)
                .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()))
                .unwrap_or_default(),
            Self::Email { mail, .. } => mail.to.join(", "),
        }
    }

    pub async fn send(&self, n: &NotificationRecord) -> Outcome {
        let started = Instant::now();
        let mut outcome = match self {
            Self::Http { kind, url, secret, client } => post(client, url, secret.as_deref(), kind, n).await,
            Self::Email { mail, password } => email(mail, password.as_deref(), n).await,
        };
        outcome.duration = started.elapsed();
        outcome
    }
}

fn url(w: &Webhook) -> Result<String, String> {
    match &w.url {
        Some(u) => Ok(u.clone()),
        None => secret(&w.url_env, &w.url_file)?.ok_or_else(|| "the channel has no url".into()),
    }
}

fn client(w: &Webhook) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(w.timeout)
        .connect_timeout(w.timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("enms/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// `sha256=<hex>` of `<timestamp>.<body>`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; the error arm cannot happen.
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn failed(retry: bool, status_code: Option<i64>, error: String) -> Outcome {
    Outcome { ok: false, retry, status_code, error: Some(error), duration: Duration::ZERO }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    kind: &str,
    n: &NotificationRecord,
) -> Outcome {
    let body = match kind {
        "alertmanager" => render::alertmanager(n),
        "slack" => render::slack(n),
        "teams" => render::teams(n),
        _ => render::webhook(n),
    };
    let body = body.to_string().into_bytes();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", &n.key)
        .header("x-enms-delivery", n.id.to_string())
        .header("x-enms-timestamp", &timestamp);
    if let Some(secret) = secret {
        request = request.header("x-enms-signature", signature(secret, &timestamp, &body));
    }
    match request.body(body).send().await {
        Ok(answer) => {
            let code = answer.status();
            let status_code = Some(i64::from(code.as_u16()));
            if code.is_success() {
                return Outcome { ok: true, retry: false, status_code, error: None, duration: Duration::ZERO };
            }
            let retry = code.is_server_error() || matches!(code.as_u16(), 408 | 425 | 429);
            // The receiver's own words, briefly: they name the cause.
            let text = answer.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            failed(
                retry,
                status_code,
                format!("HTTP {code}{}", if text.is_empty() { String::new() } else { format!(": {text}") }),
            )
        }
        // The error's text holds the URL, which may be a credential.
        Err(e) if e.is_timeout() => failed(true, None, "the receiver did not answer in time".into()),
        Err(e) if e.is_connect() => failed(true, None, "the receiver cannot be reached (connection failed)".into()),
        Err(_) => failed(true, None, "the request failed before an answer".into()),
    }
}

async fn email(mail: &Email, password: Option<&str>, n: &NotificationRecord) -> Outcome {
    let (subject, text) = render::email(n);
    let message = match build(mail, &subject, text, n) {
        Ok(m) => m,
        Err(e) => return failed(false, None, e),
    };
    let builder = match mail.security {
        Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&mail.host)),
        Security::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&mail.host),
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&mail.host),
    };
    let mut builder = match builder {
        Ok(b) => b.port(mail.port()).timeout(Some(mail.timeout)),
        Err(e) => return failed(false, None, format!("SMTP: {e}")),
    };
    if let (Some(user), Some(password)) = (&mail.username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.to_owned()));
    }
    let transport = builder.build();
    match transport.send(message).await {
        Ok(answer) => Outcome {
            ok: true,
            retry: false,
            status_code: answer.code().to_string().parse().ok(),
            error: None,
            duration: Duration::ZERO,
        },
        Err(e) => {
            let code = e.status().and_then(|c| c.to_string().parse().ok());
            failed(!e.is_permanent(), code, format!("SMTP: {e}"))
        }
    }
}

fn build(mail: &Email, subject: &str, text: String, n: &NotificationRecord) -> Result<Message, String> {
    let mut m = Message::builder()
        .from(mail.from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(subject)
        .message_id(Some(message_id(&n.key)));
    for to in &mail.to {
        m = m.to(to.parse().map_err(|e| format!("to: {e}"))?);
    }
    m.header(ContentType::TEXT_PLAIN).body(text).map_err(|e| format!("message: {e}"))
}

/// A Message-ID the key alone decides (the first 16 bytes of its SHA-256).
fn message_id(key: &str) -> String {
    use sha2::Digest;
    format!("<{}@enms>", hex::encode(&Sha256::digest(key.as_bytes())[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_a_reference_hmac() {
        // Python: hmac.new(b"Jefe", b'1764547200.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature("Jefe", "1764547200", br#"{"a":1}"#),
            "sha256=7b8a50de13edf80d29467e69b3a6cd061857a7682c1e306383d6083f1efe11d4"
        );
    }
}
