//! The one table of error codes: every `code` an HTTP answer can carry,
//! with its status and what it means. Handlers and the service crates'
//! error enums name a [`Code`]; the status follows from it, so one code
//! never answers two statuses. docs/api.md lists the same table (a test
//! keeps the two in step).

use axum::http::StatusCode;

macro_rules! codes {
    ($($variant:ident = $status:ident, $code:literal, $description:literal;)*) => {
        /// A stable, machine-readable reason for a refused request.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as clients see it in `error.code`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }

            /// What the code means, for docs/api.md and the OpenAPI text.
            pub fn description(self) -> &'static str {
                match self {
                    $(Code::$variant => $description,)*
                }
            }

            /// The code a lower crate named by its string (a field rule of
            /// enms-core, a CSV rule, a job's refusal).
            pub fn parse(code: &str) -> Option<Code> {
                match code {
                    $($code => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // 400: the request cannot be read.
    MalformedJson = BAD_REQUEST, "malformed_json", "the body is not JSON: truncated, trailing data, NaN or Infinity literals";
    InvalidQuery = BAD_REQUEST, "invalid_query", "the query string cannot be parsed";
    NotASession = BAD_REQUEST, "not_a_session", "a sign-out with an API token (revoke tokens instead) or without credentials";
    BodyReadFailed = BAD_REQUEST, "body_read_failed", "the body could not be read to its end";
    // 401: who is calling is unknown.
    Unauthorized = UNAUTHORIZED, "unauthorized", "this server needs a session or an API token and the request carries none";
    InvalidToken = UNAUTHORIZED, "invalid_token", "the API token is unknown or revoked";
    InvalidAuthorization = UNAUTHORIZED, "invalid_authorization", "a malformed or repeated Authorization header";
    TokenInQuery = UNAUTHORIZED, "token_in_query", "a ?token= on a route other than a WebSocket or SSE handshake";
    InvalidCredentials = UNAUTHORIZED, "invalid_credentials", "a sign-in with a wrong user name or password (or a disabled user)";
    SessionExpired = UNAUTHORIZED, "session_expired", "a session past its lifetime: sign in again";
    // 403
    Forbidden = FORBIDDEN, "forbidden", "the token's role is below the route's (the message names both)";
    // 404
    NotFound = NOT_FOUND, "not_found", "no resource with that id";
    RouteNotFound = NOT_FOUND, "route_not_found", "no route at that path";
    DemoDisabled = NOT_FOUND, "demo_disabled", "a demo route on a server started without --demo";
    NotificationsOff = NOT_FOUND, "notifications_off", "a notification route on a server without [notify]";
    AssetNotFound = NOT_FOUND, "asset_not_found", "no dashboard file at that path";
    UnknownHost = NOT_FOUND, "unknown_host", "no machine of type host with that name";
    NoSamples = NOT_FOUND, "no_samples", "no host has sent a sample yet (or none in the window)";
    // 405
    MethodNotAllowed = METHOD_NOT_ALLOWED, "method_not_allowed", "the route does not take that method";
    // 409: the state of what the request names stands in the way.
    Conflict = CONFLICT, "conflict", "a machine name or id is already used (field says which)";
    JobInProgress = CONFLICT, "job_in_progress", "a job of that machine and type is already queued or running, on any instance";
    JobFinished = CONFLICT, "job_finished", "cancelling a job that has already finished";
    JobElsewhere = CONFLICT, "job_elsewhere", "cancelling a job that another instance runs";
    InvalidTransition = CONFLICT, "invalid_transition", "an incident action its state does not allow: acknowledging or resolving a resolved incident, acknowledging twice";
    Contended = CONFLICT, "contended", "an incident changed under the request again and again; retry";
    NoActiveModel = CONFLICT, "no_active_model", "the machine has no active model of the kind the request needs";
    // 413
    PayloadTooLarge = PAYLOAD_TOO_LARGE, "payload_too_large", "the body is over the route's limit";
    BatchTooLarge = PAYLOAD_TOO_LARGE, "batch_too_large", "more than 10,000 readings in one batch";
    // 415
    UnsupportedMediaType = UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "the Content-Type is not the one the route reads";
    // 422: a value breaks a rule; field names it, row or line locates it.
    InvalidField = UNPROCESSABLE_ENTITY, "invalid_field", "a value of the wrong shape for its field";
    InvalidType = UNPROCESSABLE_ENTITY, "invalid_type", "a value of the wrong JSON type";
    InvalidValue = UNPROCESSABLE_ENTITY, "invalid_value", "a value outside the field's allowed set";
    Required = UNPROCESSABLE_ENTITY, "required", "a required field is missing or null";
    UnknownField = UNPROCESSABLE_ENTITY, "unknown_field", "a field the route does not know";
    MissingField = UNPROCESSABLE_ENTITY, "missing_field", "a field the request needs is absent";
    OutOfRange = UNPROCESSABLE_ENTITY, "out_of_range", "a number outside its allowed range";
    NotFinite = UNPROCESSABLE_ENTITY, "not_finite", "a number that is NaN or infinite";
    ImpossibleValue = UNPROCESSABLE_ENTITY, "impossible_value", "a host signal no host can report: a percentage over 100, a negative rate, a fractional process count";
    FutureTimestamp = UNPROCESSABLE_ENTITY, "future_timestamp", "a timestamp more than 5 minutes ahead of the server clock";
    InvalidName = UNPROCESSABLE_ENTITY, "invalid_name", "a name that is empty or only blanks";
    InvalidCharacters = UNPROCESSABLE_ENTITY, "invalid_characters", "a name with control characters";
    TooLong = UNPROCESSABLE_ENTITY, "too_long", "a text over its length limit";
    TooManyValues = UNPROCESSABLE_ENTITY, "too_many_values", "more extra values in one reading than allowed";
    TypeMismatch = UNPROCESSABLE_ENTITY, "type_mismatch", "an event payload field of the wrong type for its event type";
    UnknownMachine = UNPROCESSABLE_ENTITY, "unknown_machine", "a reading or parameter names no machine";
    PastRetention = UNPROCESSABLE_ENTITY, "past_retention", "a reading, or a window needing raw readings, older than the raw readings retention keeps";
    UnknownChannel = UNPROCESSABLE_ENTITY, "unknown_channel", "a notification channel the [notify] configuration does not name";
    UnknownEventType = UNPROCESSABLE_ENTITY, "unknown_event_type", "an event type enms does not know";
    EmptyBatch = UNPROCESSABLE_ENTITY, "empty_batch", "a batch without readings";
    InvalidId = UNPROCESSABLE_ENTITY, "invalid_id", "an id that is not a UUID";
    InvalidParameter = UNPROCESSABLE_ENTITY, "invalid_parameter", "a query parameter that cannot be read or does not apply";
    MissingParameter = UNPROCESSABLE_ENTITY, "missing_parameter", "a query parameter the route needs is absent";
    InvalidRange = UNPROCESSABLE_ENTITY, "invalid_range", "a window whose start is not before its end";
    WindowTooLong = UNPROCESSABLE_ENTITY, "window_too_long", "a window longer than the route answers at once";
    MachineMismatch = UNPROCESSABLE_ENTITY, "machine_mismatch", "the body names another machine than the path";
    MalformedCsv = UNPROCESSABLE_ENTITY, "malformed_csv", "a CSV line that cannot be parsed";
    InvalidHeader = UNPROCESSABLE_ENTITY, "invalid_header", "a CSV header without timestamp and power_kw, or with unknown columns";
    MachineRequired = UNPROCESSABLE_ENTITY, "machine_required", "a CSV without a machine column and no ?machine=";
    Empty = UNPROCESSABLE_ENTITY, "empty", "a CSV with a header but no readings";
    InvalidGranularity = UNPROCESSABLE_ENTITY, "invalid_granularity", "a baseline granularity enms does not know";
    InvalidVariable = UNPROCESSABLE_ENTITY, "invalid_variable", "a baseline variable enms does not know";
    InvalidFeature = UNPROCESSABLE_ENTITY, "invalid_feature", "an anomaly feature that is unknown, repeated, missing or constant";
    EmptyWindow = UNPROCESSABLE_ENTITY, "empty_window", "a window that holds no readings";
    InsufficientData = UNPROCESSABLE_ENTITY, "insufficient_data", "too few readings to train on (the message says how many)";
    // 426
    WebsocketUpgradeRequired = UPGRADE_REQUIRED, "websocket_upgrade_required", "a plain request to a WebSocket route";
    // 429
    RateLimited = TOO_MANY_REQUESTS, "rate_limited", "the caller's publish or ingest rate, or the address's sign-in attempts, are used up (Retry-After)";
    LockedOut = TOO_MANY_REQUESTS, "locked_out", "too many failed sign-ins in a row for that user: refused, even with the right password, until the lock-out ends (Retry-After)";
    TooManyConnectionsForToken = TOO_MANY_REQUESTS, "too_many_connections_for_token", "the token holds its maximum of streams";
    // 500
    Internal = INTERNAL_SERVER_ERROR, "internal", "a fault of the server; details in its log only";
    // 503: try again later.
    JobQueueFull = SERVICE_UNAVAILABLE, "job_queue_full", "the job queue is full";
    BusBufferFull = SERVICE_UNAVAILABLE, "bus_buffer_full", "Redis is unreachable and this instance's event buffer is full";
    ShuttingDown = SERVICE_UNAVAILABLE, "shutting_down", "the server is draining for shutdown";
    TooManyConnections = SERVICE_UNAVAILABLE, "too_many_connections", "the server holds its maximum of streams";
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::Code;

    #[test]
    fn every_code_is_spelled_once_and_parses_back() {
        let mut seen = HashSet::new();
        for &code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{} is in the table twice", code.as_str());
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    /// docs/api.md's error table lists every code under its status, and
    /// nothing else: a code added to one must be added to the other.
    #[test]
    fn the_api_docs_list_the_same_codes_with_the_same_statuses() {
        let doc = include_str!("../../../../docs/api.md");
        let start = doc.find("<!-- error-codes -->").expect("docs/api.md marks its error table");
        let end = doc[start..].find("<!-- /error-codes -->").expect("the table's end is marked") + start;
        let mut documented = HashSet::new();
        for line in doc[start..end].lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells[1].trim_matches('`');
            let status: u16 = cells[2].parse().unwrap_or_else(|_| panic!("status of {code}: {:?}", cells[2]));
            let known = Code::parse(code).unwrap_or_else(|| panic!("docs/api.md lists {code}, the table does not"));
            assert_eq!(known.status().as_u16(), status, "{code}: docs/api.md says {status}");
            documented.insert(known);
        }
        for code in Code::ALL {
            assert!(documented.contains(code), "docs/api.md does not list {}", code.as_str());
        }
    }
}
