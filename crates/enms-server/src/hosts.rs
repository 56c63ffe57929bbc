//! Hosts as the server reads them: which machines are hosts, which one a
//! request means (`?host=` or the one that sampled last), and a stored
//! reading reshaped into the seed's flat sample. Shared by the REST routes
//! (`routes/hosts.rs`) and the seed's WebSocket (`gateway/compat.rs`).

use std::collections::BTreeMap;

use chrono::Duration;
use enms_core::host::{FlatSample, HOST_TYPE};
use enms_core::{MachineRecord, Resolution};
use enms_store::ReadingQuery;

use crate::error::{ApiError, Code};
use crate::extract::Params;
use crate::state::AppState;

/// The newest sample of the host `params` names (`?host=`), else of the
/// host that sampled last.
pub async fn newest(state: &AppState, params: &Params) -> Result<FlatSample, ApiError> {
    let host = chosen(state, params).await?;
    latest(state, &host).await?.ok_or_else(|| no_samples(&host.name))
}

/// The machines of type host.
pub async fn hosts_of(state: &AppState) -> Result<Vec<MachineRecord>, ApiError> {
    Ok(state.store.list_machines().await?.into_iter().filter(|m| m.machine_type == HOST_TYPE).collect())
}

/// `?host=` by name, else the host that sampled last.
pub async fn chosen(state: &AppState, params: &Params) -> Result<MachineRecord, ApiError> {
    pick(state, params.get("host")).await
}

/// The host of that name (404 `unknown_host`), else — with no name — the
/// host that sampled last (404 `no_samples` before any did).
pub async fn pick(state: &AppState, name: Option<&str>) -> Result<MachineRecord, ApiError> {
    let hosts = hosts_of(state).await?;
    match name {
        Some(name) => hosts.into_iter().find(|m| m.name.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
            ApiError::invalid(Code::UnknownHost, "host", format!("no host named {name:?} (a machine of type host)"))
        }),
        None => hosts.into_iter().filter(|m| m.last_reading_at.is_some()).max_by_key(|m| m.last_reading_at).ok_or_else(
            || {
                ApiError::new(
                    Code::NoSamples,
                    "no host has sent a sample yet: run `enms agent --server URL` on it, or `enms serve --monitor-self`",
                )
            },
        ),
    }
}

fn no_samples(host: &str) -> ApiError {
    ApiError::new(Code::NoSamples, format!("host {host:?} has sent no sample yet"))
}

/// The host's newest reading as a flat sample.
pub async fn latest(state: &AppState, host: &MachineRecord) -> Result<Option<FlatSample>, ApiError> {
    let Some(at) = host.last_reading_at else { return Ok(None) };
    let query = ReadingQuery {
        machine_id: host.id,
        start: at,
        end: at + Duration::milliseconds(1),
        resolution: Resolution::Raw,
        limit: 1,
    };
    Ok(state.store.query_readings(&query).await?.first().map(|p| flat(host, p)))
}

pub fn flat(host: &MachineRecord, p: &enms_store::ReadingPoint) -> FlatSample {
    let extra: BTreeMap<String, f64> = p
        .extra
        .as_ref()
        .and_then(|v| v.as_object())
        .map(|o| o.iter().filter_map(|(k, v)| v.as_f64().map(|n| (k.clone(), n))).collect())
        .unwrap_or_default();
    FlatSample::new(host.id, &host.name, p.timestamp, p.power_kw, &extra)
}
