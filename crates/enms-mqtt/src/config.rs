//! `[mqtt]`: the broker, this client's identity and what it subscribes to.
//! Read from the TOML file as is (a list of subscriptions does not fit
//! flags); checked by [`MqttConfig::validate`], which the server runs with
//! every other section's check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use enms_core::event::EventType;
use enms_core::setting::{InvalidSetting, at_least_one, secret};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://HOST[:PORT]` (default port 1883), or `mqtts://HOST[:PORT]`
    /// for TLS (default port 8883).
    pub url: String,
    /// `mqtts://`: a PEM file of the CAs that sign the broker's
    /// certificate; without it, the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `mqtts://` to a broker that asks for client certificates: this
    /// client's certificate (PEM, chain first to last) and its key.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The session's name at the broker. With a persistent session the
    /// broker keeps QoS 1 messages for it while enms is down, so it must
    /// stay the same across restarts and differ between instances.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default)]
    pub username: Option<String>,
    /// The password: `password_env` (an environment variable) or
    /// `password_file`, as for every secret; `password` inline is taken
    /// too, for a file that stays on the machine.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Seconds between keep-alive pings.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// A `system_alert` is raised when more than this share of the last
    /// [`ALERT_WINDOW`](crate::ALERT_WINDOW) messages was refused.
    #[serde(default = "default_alert_share")]
    pub alert_bad_share: f64,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// `[mqtt.publish]`: durable events out to the broker, for SCADA and
    /// Node-RED to subscribe to.
    #[serde(default)]
    pub publish: Option<Outbound>,
}

/// Which events go out, under which topics: `<prefix>/<event type>`,
/// payload the event's JSON envelope (`{"type", "id", "timestamp", "data"}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Event types to send (durable ones only: they are relayed from the
    /// event log, which is what makes the relay lossless); default every
    /// durable type.
    #[serde(default)]
    pub types: Option<Vec<String>>,
}

fn default_prefix() -> String {
    "enms/events".into()
}

impl Outbound {
    /// The types to relay.
    pub fn event_types(&self) -> Result<Vec<EventType>, InvalidSetting> {
        let Some(names) = &self.types else {
            return Ok(EventType::ALL.into_iter().filter(|t| t.durable()).collect());
        };
        names
            .iter()
            .map(|n| {
                let t: EventType = n.parse().map_err(|e: String| InvalidSetting::new("mqtt.publish.types", e))?;
                if t.durable() {
                    Ok(t)
                } else {
                    Err(InvalidSetting::new(
                        "mqtt.publish.types",
                        format!("{n} is not kept in the event log; relay durable types"),
                    ))
                }
            })
            .collect()
    }
}

fn default_client_id() -> String {
    "enms".into()
}

fn default_keep_alive() -> u64 {
    30
}

fn default_alert_share() -> f64 {
    0.1
}

/// One topic filter and how its payloads become readings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// An MQTT filter; a level written `+name` matches one level and names
    /// it, so `plant/+machine/meter` takes the machine from the topic.
    pub topic: String,
    pub format: Format,
    /// `format = "json"`: the dotted path of the machine's name or id;
    /// without it, the topic's `+machine` level.
    #[serde(default)]
    pub machine: Option<String>,
    /// `format = "json"`: the path of the time (RFC 3339, or Unix seconds
    /// or milliseconds as a number); without it, the time of arrival.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `format = "json"`: reading field (`power_kw`, `energy_kwh`,
    /// `production_units`, `outdoor_temp_c`, or any other name for an
    /// extra value) → dotted path in the payload, e.g.
    /// `{ power_kw = "meter.p", energy_kwh = "meter.e" }`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// What a payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// enms's own reading JSON, as `POST /api/v1/readings` takes it: one
    /// reading, an array of them, or `{"readings": [...]}`. A `machine_id`
    /// missing from a reading comes from the topic's `+machine` level.
    Reading,
    /// Any JSON object, read through `machine`, `timestamp` and `fields`.
    Json,
    /// A plain number (`41.2`): the power in kW of the topic's `+machine`,
    /// at the time of arrival. The energy of each reading is that power
    /// over the time since the machine's previous number on the
    /// subscription; the first number (and one after a gap of over an
    /// hour) only starts the count.
    Number,
}

/// Where the broker is and whether the connection is TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttConfig {
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_s)
    }

    /// The password, from whichever of `password`, `password_env` and
    /// `password_file` is set (at most one).
    pub fn password(&self) -> Result<Option<String>, InvalidSetting> {
        let given = [self.password.is_some(), self.password_env.is_some(), self.password_file.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(InvalidSetting::new("mqtt.password", "give one of password, password_env and password_file"));
        }
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        secret(&self.password_env, &self.password_file).map_err(|e| InvalidSetting::new("mqtt.password", e))
    }

    /// Host, port and TLS of `url`.
    pub fn broker(&self) -> Result<Broker, InvalidSetting> {
        let bad = |m: String| InvalidSetting::new("mqtt.url", m);
        let (rest, tls, default_port) = if let Some(rest) = self.url.strip_prefix("mqtt://") {
            (rest, false, 1883)
        } else if let Some(rest) = self.url.strip_prefix("mqtts://") {
            (rest, true, 8883)
        } else {
            return Err(bad(format!("{:?}: use mqtt://HOST[:PORT] or, for TLS, mqtts://HOST[:PORT]", self.url)));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad(format!("{p:?} is not a port")))?),
            None => (rest, default_port),
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad(format!("{:?} has no host", self.url)));
        }
        Ok(Broker { host: host.to_owned(), port, tls })
    }

    pub fn validate(&self) -> Result<(), InvalidSetting> {
        crate::tls::client_config(self)?;
        if self.client_id.is_empty() || self.client_id.len() > 64 {
            return Err(InvalidSetting::new("mqtt.client_id", "must be 1 to 64 characters"));
        }
        let password = self.password()?;
        if password.is_some() && self.username.is_none() {
            return Err(InvalidSetting::new("mqtt.password", "a password needs a username"));
        }
        at_least_one("mqtt.keep_alive_s", self.keep_alive_s as usize)?;
        if !(self.alert_bad_share > 0.0 && self.alert_bad_share <= 1.0) {
            return Err(InvalidSetting::new("mqtt.alert_bad_share", "must be in (0, 1]"));
        }
        if self.subscriptions.is_empty() && self.publish.is_none() {
            return Err(InvalidSetting::new("mqtt.subscriptions", "list at least one topic (or only [mqtt.publish])"));
        }
        if let Some(out) = &self.publish {
            if out.prefix.is_empty() || out.prefix.contains(['+', '#']) || out.prefix.ends_with('/') {
                return Err(InvalidSetting::new("mqtt.publish.prefix", "a topic without wildcards or a trailing /"));
            }
            out.event_types()?;
        }
        for s in &self.subscriptions {
            s.validate()?;
        }
        Ok(())
    }
}

impl Subscription {
    /// The filter as the broker takes it: named levels become `+`.
    pub fn broker_filter(&self) -> String {
        self.topic.split('/').map(|l| if l.starts_with('+') { "+" } else { l }).collect::<Vec<_>>().join("/")
    }

    /// The named `+` levels and the topic's level for each, when `topic`
    /// matches this filter; `None` when it does not.
    pub fn matches(&self, topic: &str) -> Option<Vec<(String, String)>> {
        let filter: Vec<&str> = self.topic.split('/').collect();
        let levels: Vec<&str> = topic.split('/').collect();
        let mut named = Vec::new();
        for (i, f) in filter.iter().enumerate() {
            if *f == "#" {
                return Some(named);
            }
            let level = levels.get(i)?;
            if let Some(name) = f.strip_prefix('+') {
                if !name.is_empty() {
                    named.push((name.to_owned(), (*level).to_owned()));
                }
            } else if f != level {
                return None;
            }
        }
        (levels.len() == filter.len()).then_some(named)
    }

    fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |m: String| InvalidSetting::new("mqtt.subscriptions", m);
        let levels: Vec<&str> = self.topic.split('/').collect();
        if self.topic.is_empty() {
            return Err(bad("a subscription needs a topic".into()));
        }
        for (i, l) in levels.iter().enumerate() {
            let wildcard_inside = (l.contains('#') && (*l != "#" || i + 1 != levels.len()))
                || (l.contains('+') && !l.starts_with('+'))
                || l[l.starts_with('+') as usize..].contains('+');
            if wildcard_inside {
                return Err(bad(format!("{:?}: # only as the last level, + only at the start of a level", self.topic)));
            }
        }
        let names_machine = levels.contains(&"+machine");
        let fields = &self.fields;
        match self.format {
            Format::Reading => {
                if self.machine.is_some() || self.timestamp.is_some() || !fields.is_empty() {
                    return Err(bad(format!(
                        "{:?}: machine, timestamp and fields apply to format = \"json\"",
                        self.topic
                    )));
                }
                Ok(())
            }
            Format::Number => {
                if self.machine.is_some() || self.timestamp.is_some() || !fields.is_empty() {
                    return Err(bad(format!(
                        "{:?}: machine, timestamp and fields apply to format = \"json\"; a number is a +machine's power_kw",
                        self.topic
                    )));
                }
                if !names_machine {
                    return Err(bad(format!(
                        "{:?}: format = \"number\" needs a +machine level in the topic",
                        self.topic
                    )));
                }
                Ok(())
            }
            Format::Json => {
                if self.machine.is_none() && !names_machine {
                    return Err(bad(format!(
                        "{:?}: name the machine with `machine = \"path\"` or a +machine level",
                        self.topic
                    )));
                }
                for needed in ["power_kw", "energy_kwh"] {
                    if !fields.contains_key(needed) {
                        return Err(bad(format!("{:?}: fields must map {needed}", self.topic)));
                    }
                }
                if fields.values().any(|p| p.is_empty()) {
                    return Err(bad(format!("{:?}: an empty field path", self.topic)));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> MqttConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn topics_match_with_named_levels() {
        let sub = |topic: &str| Subscription {
            topic: topic.into(),
            format: Format::Reading,
            machine: None,
            timestamp: None,
            fields: BTreeMap::new(),
        };
        let s = sub("plant/+machine/meter");
        assert_eq!(s.broker_filter(), "plant/+/meter");
        assert_eq!(s.matches("plant/C-1/meter"), Some(vec![("machine".into(), "C-1".into())]));
        assert_eq!(s.matches("plant/C-1/other"), None);
        assert_eq!(s.matches("plant/C-1/meter/x"), None);
        let all = sub("site/#");
        assert_eq!(all.matches("site/a/b"), Some(vec![]));
    }

    #[test]
    fn a_configuration_is_checked_by_name() {
        let ok = config(
            "url = \"mqtt://127.0.0.1:1884\"\n[[subscriptions]]\ntopic = \"plant/+machine/json\"\nformat = \"json\"\n\
             fields = { power_kw = \"p\", energy_kwh = \"e\" }\n",
        );
        assert!(ok.validate().is_ok());
        assert_eq!(ok.broker().expect("broker"), Broker { host: "127.0.0.1".into(), port: 1884, tls: false });
        let tls = config("url = \"mqtts://broker.plant\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n");
        assert_eq!(tls.broker().expect("broker"), Broker { host: "broker.plant".into(), port: 8883, tls: true });
        for (text, setting) in [
            ("url = \"tcp://h\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n", "mqtt.url"),
            ("url = \"mqtt://h\"\nsubscriptions = []\n", "mqtt.subscriptions"),
            ("url = \"mqtt://h\"\n[[subscriptions]]\ntopic = \"a/#/b\"\nformat = \"reading\"\n", "mqtt.subscriptions"),
            (
                "url = \"mqtt://h\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"json\"\nfields = { power_kw = \"p\", energy_kwh = \"e\" }\n",
                "mqtt.subscriptions",
            ),
            (
                "url = \"mqtt://h\"\npassword = \"x\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n",
                "mqtt.password",
            ),
            (
                "url = \"mqtt://h\"\nusername = \"u\"\npassword_env = \"ENMS_TEST_UNSET_MQTT_PASSWORD\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n",
                "mqtt.password",
            ),
            (
                "url = \"mqtt://h\"\nusername = \"u\"\npassword = \"a\"\npassword_file = \"Cargo.toml\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n",
                "mqtt.password",
            ),
            (
                "url = \"mqtt://h\"\nca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n",
                "mqtt.ca_file",
            ),
            (
                "url = \"mqtts://h\"\nca_file = \"/nonexistent/ca.pem\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n",
                "mqtt.ca_file",
            ),
            (
                "url = \"mqtts://h\"\nca_file = \"Cargo.toml\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n",
                "mqtt.ca_file",
            ),
            (
                "url = \"mqtts://h\"\nclient_cert_file = \"Cargo.toml\"\n[[subscriptions]]\ntopic = \"a\"\nformat = \"reading\"\n",
                "mqtt.client_key_file",
            ),
            (
                "url = \"mqtt://h\"\n[[subscriptions]]\ntopic = \"plant/power\"\nformat = \"number\"\n",
                "mqtt.subscriptions",
            ),
            (
                "url = \"mqtt://h\"\n[[subscriptions]]\ntopic = \"p/+machine/kw\"\nformat = \"number\"\ntimestamp = \"ts\"\n",
                "mqtt.subscriptions",
            ),
        ] {
            assert_eq!(config(text).validate().expect_err(text).setting, setting, "{text}");
        }
    }
}
