//! `[notify]` in the config file: channels, rules, retries, and their checks.
//!
//! Secrets never sit in the file's values themselves: a webhook's signing
//! secret, a Slack or Teams URL (its path is the credential) and an SMTP
//! password are named by `*_env` (an environment variable) or `*_file` (a
//! file whose content, trimmed, is the secret). They are read once, at
//! start, and never shown by the API or written to the log.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{FixedOffset, NaiveTime};
use enms_core::duration::{human, human_opt};
use enms_core::event::{EventType, Severity};
use enms_core::setting::{InvalidSetting, above_zero, at_least_one, secret};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Channel name → where and how to send.
    #[serde(default)]
    pub channels: BTreeMap<String, Channel>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Tries per notification before it is marked failed.
    #[serde(default = "max_attempts")]
    pub max_attempts: u32,
    /// Wait after the first failed try; doubled after each further one.
    #[serde(default = "retry_after", deserialize_with = "human")]
    pub retry_after: Duration,
    /// The longest wait between two tries.
    #[serde(default = "retry_max", deserialize_with = "human")]
    pub retry_max: Duration,
    /// The clock quiet hours are read on, e.g. `"+01:00"`; default UTC.
    #[serde(default = "utc")]
    pub utc_offset: String,
    /// The dashboard's address, for links in messages (e.g.
    /// `https://enms.plant.example`); without it, messages carry no links.
    #[serde(default)]
    pub dashboard_url: Option<String>,
}

fn max_attempts() -> u32 {
    10
}
fn retry_after() -> Duration {
    Duration::from_secs(1)
}
fn retry_max() -> Duration {
    Duration::from_secs(300)
}
fn utc() -> String {
    "+00:00".into()
}

/// One destination. `kind` picks the payload: `webhook` (enms's JSON),
/// `alertmanager` (the Prometheus Alertmanager webhook format), `slack`
/// and `teams` (their incoming-webhook formats), or `email` (SMTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    Webhook(Webhook),
    Alertmanager(Webhook),
    Slack(Webhook),
    Teams(Webhook),
    Email(Email),
}

impl Channel {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Alertmanager(_) => "alertmanager",
            Self::Slack(_) => "slack",
            Self::Teams(_) => "teams",
            Self::Email(_) => "email",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://`. Or `url_env` / `url_file`, for URLs that
    /// are themselves a credential (Slack, Teams).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The HMAC-SHA256 key that signs each body (`X-Enms-Signature`).
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default = "timeout", deserialize_with = "human")]
    pub timeout: Duration,
}

fn timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Upgrade with STARTTLS, and refuse to go on without it.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub host: String,
    /// Default 25 (none), 587 (starttls) or 465 (tls).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "timeout", deserialize_with = "human")]
    pub timeout: Duration,
}

impl Email {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::None => 25,
            Security::Starttls => 587,
            Security::Tls => 465,
        })
    }
}

/// Which events go to which channels, and what happens while nobody
/// acknowledges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Event types; default `["anomaly_detected"]`.
    #[serde(default = "anomalies")]
    pub events: Vec<String>,
    /// Only events at least this severe (`info`, `warning`, `critical`).
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Machine names or ids; empty: every machine (and events of none).
    #[serde(default)]
    pub machines: Vec<String>,
    /// Machine locations; empty: every location.
    #[serde(default)]
    pub locations: Vec<String>,
    /// Notified first.
    pub channels: Vec<String>,
    /// Unacknowledged after each step's `after` (from the first
    /// notification): its channels are notified too.
    #[serde(default)]
    pub escalate: Vec<Escalation>,
    /// Repeat to every channel notified so far, this often, until the alert
    /// is acknowledged or resolved.
    #[serde(default, deserialize_with = "human_opt")]
    pub remind_every: Option<Duration>,
    /// Events about something older than this are not notified (a batch
    /// detection over last year's history pages nobody); default 1 h.
    #[serde(default = "max_age", deserialize_with = "human")]
    pub max_age: Duration,
    /// `"22:00-06:00"`: what falls due inside is sent when it ends.
    #[serde(default)]
    pub quiet_hours: Option<String>,
    /// Send a resolved notification when the episode ends; default true.
    #[serde(default = "yes")]
    pub resolved: bool,
}

fn anomalies() -> Vec<String> {
    vec!["anomaly_detected".into()]
}
fn max_age() -> Duration {
    Duration::from_secs(3600)
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    #[serde(deserialize_with = "human")]
    pub after: Duration,
    pub channels: Vec<String>,
}

/// Quiet hours on a rule's clock: from `start` up to `end`, across
/// midnight when `end` is earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?}: use HH:MM-HH:MM, e.g. 22:00-06:00");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!("{text:?}: start and end are the same time"));
        }
        Ok(Self { start, end })
    }
}

/// Event types a rule may name: the durable ones that tell of something
/// (the end of an episode is not its own rule: it sends the resolved
/// notification of the rule that notified its start; likewise an
/// incident's later changes follow the alert its `incident_opened` made —
/// a raised severity, the acknowledgement that stops escalation, the
/// resolution).
pub const RULE_EVENTS: [EventType; 6] = [
    EventType::AnomalyDetected,
    EventType::IncidentOpened,
    EventType::SystemAlert,
    EventType::TrainingCompleted,
    EventType::TrainingStarted,
    EventType::ModelUpdated,
];

impl NotifyConfig {
    pub fn offset(&self) -> Result<FixedOffset, InvalidSetting> {
        let bad = || InvalidSetting::new("notify.utc_offset", format!("{:?}: use ±HH:MM", self.utc_offset));
        let text = self.utc_offset.trim();
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 14 || m > 59 {
            return Err(bad());
        }
        FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
    }

    /// Every check `enms config check` and the server's start make,
    /// secrets included (a named variable or file must be there).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one("notify.max_attempts", self.max_attempts as usize)?;
        above_zero("notify.retry_after", self.retry_after)?;
        if self.retry_max < self.retry_after {
            return Err(InvalidSetting::new("notify.retry_max", "must be at least notify.retry_after"));
        }
        self.offset()?;
        if let Some(url) = &self.dashboard_url {
            http_url(url).map_err(|m| InvalidSetting::new("notify.dashboard_url", m))?;
        }
        for (name, channel) in &self.channels {
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(InvalidSetting::new(
                    "notify.channels",
                    format!("{name:?}: a channel's name is 1 to 64 letters, digits, '-', '_' or '.'"),
                ));
            }
            validate_channel(name, channel)?;
        }
        let mut names = HashSet::new();
        for rule in &self.rules {
            self.validate_rule(rule)?;
            if !names.insert(rule.name.as_str()) {
                return Err(InvalidSetting::new("notify.rules", format!("two rules are named {:?}", rule.name)));
            }
        }
        Ok(())
    }

    fn validate_rule(&self, rule: &Rule) -> Result<(), InvalidSetting> {
        let bad = |m: String| InvalidSetting::new("notify.rules", format!("rule {:?}: {m}", rule.name));
        if rule.name.trim().is_empty() || rule.name.contains('/') {
            return Err(InvalidSetting::new("notify.rules", "every rule needs a name, without '/'"));
        }
        if rule.events.is_empty() {
            return Err(bad("events lists no event type".into()));
        }
        for e in &rule.events {
            let kind: EventType = e.parse().map_err(|m: String| bad(m))?;
            if !RULE_EVENTS.contains(&kind) {
                let names: Vec<&str> = RULE_EVENTS.iter().map(|t| t.as_str()).collect();
                return Err(bad(format!("event {e:?} cannot be notified; use {}", names.join(", "))));
            }
        }
        if rule.channels.is_empty() {
            return Err(bad("channels lists no channel".into()));
        }
        let known = |c: &String| {
            if self.channels.contains_key(c) {
                Ok(())
            } else {
                let names: Vec<&str> = self.channels.keys().map(String::as_str).collect();
                Err(bad(format!("unknown channel {c:?} (channels: {})", names.join(", "))))
            }
        };
        rule.channels.iter().try_for_each(known)?;
        let mut last = Duration::ZERO;
        for step in &rule.escalate {
            if step.after <= last {
                return Err(bad("escalation steps need growing `after` times above zero".into()));
            }
            last = step.after;
            if step.channels.is_empty() {
                return Err(bad("an escalation step lists no channel".into()));
            }
            step.channels.iter().try_for_each(known)?;
        }
        if let Some(q) = &rule.quiet_hours {
            QuietHours::parse(q).map_err(|m| bad(format!("quiet_hours {m}")))?;
        }
        above_zero("notify.rules.max_age", rule.max_age)?;
        Ok(())
    }
}

fn validate_channel(name: &str, channel: &Channel) -> Result<(), InvalidSetting> {
    let bad = |m: String| InvalidSetting::new("notify.channels", format!("channel {name:?}: {m}"));
    match channel {
        Channel::Webhook(w) | Channel::Alertmanager(w) | Channel::Slack(w) | Channel::Teams(w) => {
            let url = match (&w.url, &w.url_env, &w.url_file) {
                (Some(u), None, None) => u.clone(),
                (None, env, file) if env.is_some() != file.is_some() => {
                    secret(env, file).map_err(bad)?.ok_or_else(|| bad("the url is empty".into()))?
                }
                _ => return Err(bad("give exactly one of url, url_env and url_file".into())),
            };
            http_url(&url).map_err(bad)?;
            if w.secret_env.is_some() && w.secret_file.is_some() {
                return Err(bad("give secret_env or secret_file, not both".into()));
            }
            secret(&w.secret_env, &w.secret_file).map_err(bad)?;
            above_zero("notify.channels.timeout", w.timeout)?;
        }
        Channel::Email(e) => {
            if e.host.trim().is_empty() {
                return Err(bad("host is empty".into()));
            }
            e.from.parse::<lettre::message::Mailbox>().map_err(|err| bad(format!("from {:?}: {err}", e.from)))?;
            if e.to.is_empty() {
                return Err(bad("to lists no address".into()));
            }
            for to in &e.to {
                to.parse::<lettre::message::Mailbox>().map_err(|err| bad(format!("to {to:?}: {err}")))?;
            }
            if e.password_env.is_some() && e.password_file.is_some() {
                return Err(bad("give password_env or password_file, not both".into()));
            }
            let password = secret(&e.password_env, &e.password_file).map_err(bad)?;
            if password.is_some() != e.username.is_some() {
                return Err(bad("a username needs a password (password_env or password_file), and back".into()));
            }
            above_zero("notify.channels.timeout", e.timeout)?;
        }
    }
    Ok(())
}

fn http_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("url must be http:// or https:// with a host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        let config: NotifyConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    const CHANNELS: &str = "[channels.ops]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n\
        [channels.mail]\nkind = \"email\"\nhost = \"localhost\"\nsecurity = \"none\"\nfrom = \"enms@plant.example\"\n\
        to = [\"ops@plant.example\"]\n";

    #[test]
    fn a_full_configuration_reads() {
        let c = parse(&format!(
            "{CHANNELS}[[rules]]\nname = \"compressors\"\nmin_severity = \"warning\"\nchannels = [\"ops\"]\n\
             remind_every = \"30m\"\nquiet_hours = \"22:00-06:00\"\n\
             [[rules.escalate]]\nafter = \"15m\"\nchannels = [\"mail\"]\n"
        ))
        .expect("valid");
        let rule = &c.rules[0];
        assert_eq!(rule.escalate[0].after, Duration::from_secs(900));
        assert_eq!(rule.remind_every, Some(Duration::from_secs(1800)));
        assert_eq!(rule.events, vec!["anomaly_detected"]);
        assert_eq!(c.channels["mail"].kind(), "email");
        let Channel::Email(mail) = &c.channels["mail"] else { panic!("email") };
        assert_eq!(mail.port(), 25);
    }

    #[test]
    fn mistakes_are_refused_by_name() {
        let rule = |extra: &str| format!("{CHANNELS}[[rules]]\nname = \"r\"\nchannels = [\"ops\"]\n{extra}");
        let cases = [
            (format!("{CHANNELS}[[rules]]\nname = \"r\"\nchannels = [\"pager\"]\n"), "unknown channel \"pager\""),
            (rule("events = [\"anomaly_updated\"]\n"), "cannot be notified"),
            (rule("events = [\"coffee_ready\"]\n"), "coffee_ready"),
            (rule("quiet_hours = \"22-6\"\n"), "HH:MM-HH:MM"),
            (rule("[[rules.escalate]]\nafter = \"0s\"\nchannels = [\"mail\"]\n"), "positive"),
            (rule("min_severity = \"loud\"\n"), "loud"),
            ("[channels.x]\nkind = \"webhook\"\nurl = \"ftp://h/\"\n".into(), "http:// or https://"),
            ("[channels.x]\nkind = \"pager\"\nurl = \"http://h/\"\n".into(), "pager"),
            ("[channels.x]\nkind = \"webhook\"\nurl = \"http://h/\"\nsecret_env = \"ENMS_TEST_UNSET_SECRET\"\n".into(),
             "ENMS_TEST_UNSET_SECRET is not set"),
            ("[channels.x]\nkind = \"email\"\nhost = \"h\"\nfrom = \"not an address\"\nto = [\"a@b.example\"]\n".into(),
             "from"),
            ("[channels.x]\nkind = \"email\"\nhost = \"h\"\nfrom = \"a@b.example\"\nto = []\n".into(), "to lists"),
            ("[channels.x]\nkind = \"email\"\nhost = \"h\"\nfrom = \"a@b.example\"\nto = [\"c@d.example\"]\nusername = \"u\"\n".into(),
             "needs a password"),
            ("utc_offset = \"CET\"\n".into(), "utc_offset"),
            ("retry_after = \"10s\"\nretry_max = \"1s\"\n".into(), "retry_max"),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(expected), "{text}\n→ {err}");
        }
    }

    #[test]
    fn quiet_hours_parse_across_midnight() {
        let q = QuietHours::parse("22:00-06:30").expect("valid");
        assert_eq!((q.start.to_string(), q.end.to_string()), ("22:00:00".into(), "06:30:00".into()));
        assert!(QuietHours::parse("06:00-06:00").is_err());
    }
}
