//! Who is calling and what they may do: API tokens (only their hash is
//! stored) and the sessions of people who signed in (`enms-accounts`), the
//! role each route needs, per-caller rate limits, and the one guard every
//! API route passes through.
//!
//! A session secret is a bearer credential like a token (prefix
//! `enms_s_`), so everything below treats both alike: the guard asks the
//! sessions when the prefix says so and the tokens otherwise.
//!
//! A request names its token with `Authorization: Bearer`, `?token=` (on
//! the WebSocket and SSE handshakes only: `EventSource` and some WebSocket
//! clients cannot set headers; anywhere else a token in the query string
//! would end up in proxy logs and browser history, so it is refused) or,
//! for browser WebSockets, a `Sec-WebSocket-Protocol` entry
//! `bearer.<token>`. The guard runs after
//! routing (so it knows the matched route) and before the handler (so a
//! refused WebSocket never upgrades).

mod cache;
pub mod policy;
pub mod rate;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use enms_accounts::{AccountError, Accounts, SESSION_PREFIX};
use enms_core::access::{Role, TokenRecord, valid_token_name};
use enms_core::setting::{InvalidSetting, above_zero};
use enms_store::Store;
use uuid::Uuid;

use crate::error::{ApiError, Code};
use policy::Access;
pub use rate::RateLimit;

/// Security settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Refuse API requests without a valid token. Off means every caller
    /// is an anonymous admin (the default on a loopback address only).
    pub required: bool,
    /// Origins allowed to call the API from a browser (CORS); empty: same
    /// origin only.
    pub cors_origins: Vec<String>,
    /// Per token: `POST /api/v1/events`.
    pub publish_rate: RateLimit,
    /// Per token: `POST /api/v1/readings` and `/readings/import`.
    pub ingest_rate: RateLimit,
    /// How long a token lookup is trusted before the store is asked again;
    /// a revoked token stops working within this time on every instance.
    pub cache_ttl: Duration,
    /// Session lifetime and lock-out after failed sign-ins.
    pub sign_in: enms_accounts::Policy,
    /// Per client address: `POST /api/auth/login` attempts.
    pub login_rate: RateLimit,
    /// Reverse proxies (nginx) whose `X-Forwarded-For` names the client:
    /// from one of them, a sign-in counts against the nearest forwarded
    /// address that is not a trusted proxy; from anyone else the header is
    /// ignored, as a client could write anything in it.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        for origin in &self.cors_origins {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.trim_end_matches('/').contains(|c: char| c.is_whitespace())
                    && origin.matches('/').count() == 2);
            if !ok {
                return Err(InvalidSetting::new(
                    "cors_origins",
                    format!("{origin:?} is not an origin such as https://grafana.plant.local:3000 (or *)"),
                ));
            }
        }
        self.publish_rate.validate("publish_rate", "publish_burst")?;
        self.ingest_rate.validate("ingest_rate", "ingest_burst")?;
        if !(self.login_rate.per_second.is_finite() && self.login_rate.per_second > 0.0) {
            return Err(InvalidSetting::new("login_rate", "must be a number of attempts per minute above 0"));
        }
        self.login_rate.validate("login_rate", "login_burst")?;
        self.sign_in.validate()?;
        above_zero("token_cache", self.cache_ttl)
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            required: false,
            cors_origins: Vec::new(),
            publish_rate: RateLimit { per_second: 200.0, burst: 400 },
            ingest_rate: RateLimit { per_second: 20.0, burst: 40 },
            cache_ttl: Duration::from_secs(5),
            sign_in: enms_accounts::Policy::default(),
            // Ten at once, then one every six seconds: a person who
            // mistypes is never slowed, a guesser gets 600 tries an hour
            // per address (and five per user before the lock-out).
            login_rate: RateLimit { per_second: 1.0 / 6.0, burst: 10 },
            trusted_proxies: Vec::new(),
        }
    }
}

/// The caller of a request, put in its extensions by the guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The API token's or the signed-in user's id: what per-caller rate
    /// and connection limits count against (a user's sessions share one).
    /// `None` for the anonymous caller of an open server.
    pub id: Option<Uuid>,
    /// The token's or the user's name: the actor in timelines and logs.
    pub name: String,
    pub role: Role,
    /// Set when the caller is a person signed in.
    pub session: Option<SessionInfo>,
    /// The SHA-256 of the secret the caller sent (none when anonymous):
    /// what a stream re-checks to end with its credential.
    pub credential: Option<String>,
}

/// The session a signed-in caller uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self { id: None, name: "anonymous".into(), role: Role::Admin, session: None, credential: None }
    }
}

/// The address a request came from (the TCP peer: behind a proxy, the
/// proxy's), put in each connection's extensions by the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Token and session lookups (cached) and rate limits, shared by every
/// request.
pub struct Auth {
    pub config: AuthConfig,
    /// Users, sign-in and sessions.
    pub accounts: Accounts,
    /// The prefix the app is served under: routes are matched with it, the
    /// policy table is written without it.
    base_path: String,
    store: Arc<dyn Store>,
    cache: cache::TokenCache,
    publish: rate::Limiter<Uuid>,
    ingest: rate::Limiter<Uuid>,
    login: rate::Limiter<std::net::IpAddr>,
}

impl Auth {
    pub fn new(config: AuthConfig, base_path: &str, store: Arc<dyn Store>) -> Self {
        Self {
            base_path: base_path.to_owned(),
            cache: cache::TokenCache::new(config.cache_ttl),
            publish: rate::Limiter::new(config.publish_rate),
            ingest: rate::Limiter::new(config.ingest_rate),
            login: rate::Limiter::new(config.login_rate),
            accounts: Accounts::new(store.clone(), config.sign_in.clone()),
            config,
            store,
        }
    }

    /// The address a request counts against: its TCP peer or, when the
    /// peer is a trusted proxy, the nearest `X-Forwarded-For` entry (read
    /// from the right, as each proxy appends) that is not one — entries a
    /// client put further left cannot move it.
    pub fn client_addr(&self, peer: Option<ClientAddr>, headers: &HeaderMap) -> std::net::IpAddr {
        let peer = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.0);
        let trusted = &self.config.trusted_proxies;
        if !trusted.contains(&peer) {
            return peer;
        }
        let forwarded: Vec<std::net::IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        forwarded.into_iter().rev().find(|a| !trusted.contains(a)).unwrap_or(peer)
    }

    /// Takes one sign-in attempt from the address's allowance, or answers
    /// `rate_limited` with how long to wait.
    pub fn admit_login(&self, addr: std::net::IpAddr) -> Result<(), ApiError> {
        self.login.check(addr).map_err(|wait| {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            ApiError::new(Code::RateLimited, format!("too many sign-in attempts from {addr}; retry in {secs} s"))
                .with_retry_after(secs)
        })
    }

    /// The principal a credential names. A credential that is given is
    /// always checked, even on an open server, so a misconfigured client
    /// learns of it before it matters.
    pub async fn authenticate(&self, credential: Option<&str>) -> Result<Principal, ApiError> {
        let Some(secret) = credential else {
            if self.config.required {
                return Err(unauthorized(
                    Code::Unauthorized,
                    "this server needs you to sign in (POST /api/auth/login) or an API token: send Authorization: Bearer <token>",
                ));
            }
            return Ok(Principal::anonymous());
        };
        self.lookup(token::hash(secret), secret.starts_with(SESSION_PREFIX)).await
    }

    /// The principal of a credential by its hash (`session`: a session's,
    /// else an API token's), through the cache.
    pub async fn lookup(&self, hash: String, session: bool) -> Result<Principal, ApiError> {
        let unknown = || if session { AccountError::UnknownSession.into() } else { invalid_token() };
        if let Some(known) = self.cache.get(&hash) {
            let principal = known.ok_or_else(unknown)?;
            // A cached session is still held to its end, to the millisecond.
            if let Some(s) = principal.session.filter(|s| s.expires_at <= Utc::now()) {
                return Err(AccountError::SessionExpired { at: s.expires_at }.into());
            }
            return Ok(principal);
        }
        let principal = if session {
            match self.accounts.session_by_hash(&hash).await {
                Ok((s, user)) => Some(Principal {
                    id: Some(user.id),
                    name: user.name,
                    role: user.role,
                    session: Some(SessionInfo { id: s.id, expires_at: s.expires_at }),
                    credential: Some(hash.clone()),
                }),
                Err(AccountError::UnknownSession) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            let found = self.store.find_token(&hash).await?.filter(|t| t.is_active());
            found.map(|t| Principal {
                id: Some(t.id),
                name: t.name,
                role: t.role,
                session: None,
                credential: Some(hash.clone()),
            })
        };
        self.cache.put(hash, principal.clone());
        principal.ok_or_else(unknown)
    }

    /// Whether a credential still lets its caller in: false once it was
    /// revoked, signed out, disabled or has expired; true when the store
    /// cannot say (a store that is away ends no stream).
    pub async fn still_valid(&self, hash: &str, session: bool) -> bool {
        match self.lookup(hash.to_owned(), session).await {
            Ok(_) => true,
            Err(e) => e.status != StatusCode::UNAUTHORIZED,
        }
    }

    /// Forgets cached lookups, so a revocation on this instance is immediate.
    pub fn forget_cached(&self) {
        self.cache.clear();
    }
}

/// A created token: the record and, this once, its secret.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub record: TokenRecord,
    /// The secret (`enms_` and 64 hex digits), shown this once.
    pub token: String,
}

/// Makes a token and stores only its hash (`POST /api/v1/tokens` and
/// `enms token create`).
pub async fn issue(store: &dyn Store, name: &str, role: Role) -> Result<CreatedToken, ApiError> {
    valid_token_name(name).map_err(|m| ApiError::invalid(Code::InvalidField, "name", m))?;
    let secret = token::generate();
    let record = TokenRecord {
        id: Uuid::new_v4(),
        name: name.trim().to_owned(),
        role,
        hash: token::hash(&secret),
        created_at: chrono::Utc::now(),
        revoked_at: None,
    };
    store.create_token(&record).await?;
    Ok(CreatedToken { record, token: secret })
}

fn unauthorized(code: Code, message: &str) -> ApiError {
    ApiError::new(code, message)
}

fn invalid_token() -> ApiError {
    unauthorized(Code::InvalidToken, "the API token is unknown or revoked")
}

/// Whether a route is a stream handshake, where `?token=` is accepted.
pub fn query_token_allowed(route: &str) -> bool {
    route == "/api/v1/events/stream"
        || route == "/api/v1/ws"
        || route.starts_with("/api/v1/ws/")
        || route.starts_with("/api/ws/")
}

/// The token a request carries, by header, query (where `query_allowed`) or
/// WebSocket subprotocol.
pub fn credential(headers: &HeaderMap, query: Option<&str>, query_allowed: bool) -> Result<Option<String>, ApiError> {
    let from_query = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token" && !value.is_empty()).then(|| value.to_owned())
    });
    if from_query.is_some() && !query_allowed {
        return Err(unauthorized(
            Code::TokenInQuery,
            "send the token in the Authorization header (Bearer); ?token= is accepted on WebSocket and SSE \
             handshakes only, because a query string ends up in proxy logs and browser history",
        ));
    }
    if headers.get_all(AUTHORIZATION).iter().nth(1).is_some() {
        return Err(unauthorized(Code::InvalidAuthorization, "send one Authorization header, not several"));
    }
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value.to_str().unwrap_or("");
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
            return Err(unauthorized(Code::InvalidAuthorization, "Authorization must be `Bearer <token>`"));
        }
        return Ok(Some(rest.trim().to_owned()));
    }
    if from_query.is_some() {
        return Ok(from_query);
    }
    Ok(bearer_subprotocol(headers).map(str::to_owned))
}

/// The WebSocket subprotocols a client offered, in its order.
pub fn offered_subprotocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// `bearer.<token>` among the offered WebSocket subprotocols.
pub fn bearer_subprotocol(headers: &HeaderMap) -> Option<&str> {
    offered_subprotocols(headers).find_map(|p| p.strip_prefix("bearer."))
}

/// The route guard: authenticates, checks the route's role, applies the
/// token's rate limit, and hands the principal to the handler.
pub async fn guard(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let route = route.strip_prefix(auth.base_path.as_str()).unwrap_or(&route);
    let access = policy::access(req.method(), route);
    let Access::Needs(role, limit) = access else { return next.run(req).await };
    let principal = match credential(req.headers(), req.uri().query(), query_token_allowed(route)) {
        Ok(c) => auth.authenticate(c.as_deref()).await,
        Err(e) => Err(e),
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => return refusal(e),
    };
    if principal.role < role {
        let who = if principal.session.is_some() { "user" } else { "token" };
        let message = format!("this needs the {role} role; {who} {:?} has {}", principal.name, principal.role);
        return ApiError::new(Code::Forbidden, message).into_response();
    }
    if let (Some(limit), Some(id)) = (limit, principal.id) {
        let limiter = match limit {
            policy::Limit::Publish => &auth.publish,
            policy::Limit::Ingest => &auth.ingest,
        };
        if let Err(wait) = limiter.check(id) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            return ApiError::new(
                Code::RateLimited,
                format!("too many requests for {:?}; retry in {secs} s", principal.name),
            )
            .with_retry_after(secs)
            .into_response();
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

fn refusal(e: ApiError) -> Response {
    let unauthorized = e.status == StatusCode::UNAUTHORIZED;
    let mut resp = e.into_response();
    if unauthorized {
        resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"enms\""));
    }
    resp
}
