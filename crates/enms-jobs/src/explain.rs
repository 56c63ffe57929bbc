//! An anomaly explained (docs/explanations.md): the facts gathered from the
//! store and the active anomaly model — the anomaly and its episode, each
//! judged signal's deviation at that reading, the machine's past episodes
//! of the kind and how their incidents ended — and turned into an
//! [`Analysis`] by `enms_analytics::explain`.

use chrono::{DateTime, Duration, Utc};
use enms_analytics::detect::{Expectation, Signal};
use enms_analytics::explain::{self, Contribution, Pattern, Shape};
use enms_analytics::kpi::Tariff;
use enms_store::{AnomalyRecord, EpisodeQuery, EpisodeRecord, IncidentQuery};
use serde::Serialize;
use uuid::Uuid;

use crate::error::JobError;
use crate::live::Live;
use crate::{blocking, load_signal_rows};

/// Past episodes compared, and shown.
const PAST_EPISODES: u32 = 500;
const SIMILAR_SHOWN: usize = 3;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExpectedActual {
    pub metric: String,
    pub actual: f64,
    pub expected: f64,
    /// (actual − expected) / expected, in %; absent when nothing was expected.
    pub deviation_pct: Option<f64>,
    /// In the signal's σ.
    pub deviation_sigma: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EpisodeFacts {
    pub id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_min: f64,
    pub open: bool,
    pub actual_kwh: Option<f64>,
    pub expected_kwh: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Excess {
    /// Energy above expectation over the episode (or the reading's interval).
    pub kwh: f64,
    /// Priced hour by hour at the configured tariff.
    pub cost: f64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SimilarEpisode {
    pub id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_min: f64,
    pub peak_value: f64,
    pub peak_expected: f64,
    /// In [0, 1].
    pub similarity: f64,
    /// How it ended: the incident that gathered it, if any.
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatternFacts {
    pub name: Pattern,
    pub description: &'static str,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Analysis {
    pub anomaly_id: Uuid,
    pub machine_id: Uuid,
    pub machine_name: String,
    pub machine_type: String,
    pub timestamp: DateTime<Utc>,
    pub severity: String,
    pub anomaly_type: String,
    pub pattern: PatternFacts,
    pub expected_vs_actual: ExpectedActual,
    pub episode: Option<EpisodeFacts>,
    pub excess: Option<Excess>,
    /// Largest share first; from the active anomaly model when it judges
    /// that reading, else the anomaly's own signal.
    pub contributions: Vec<Contribution>,
    pub similar_episodes: Vec<SimilarEpisode>,
    /// From the rule table for the machine type and pattern.
    pub checks: Vec<&'static str>,
    /// The facts above in a few sentences.
    pub summary: String,
}

pub async fn analyze(live: &Live, tariff: &Tariff, a: &AnomalyRecord) -> Result<Analysis, JobError> {
    let store = live.store.as_ref();
    let machine = store.get_machine(a.machine_id).await?.ok_or_else(|| JobError::not_found("machine", a.machine_id))?;
    let episodes = store
        .list_episodes(&EpisodeQuery { machine_id: Some(a.machine_id), limit: PAST_EPISODES, ..Default::default() })
        .await?;
    let own: Vec<&EpisodeRecord> = episodes.iter().filter(|e| e.anomaly_type == a.anomaly_type).collect();
    let episode = own.iter().find(|e| e.start <= a.timestamp && a.timestamp <= e.end).copied();

    // Each judged signal at this reading, under the active model.
    let mut reading_hours = None;
    let mut contributions = Vec::new();
    if let Some((_, model, baseline)) = live.active_or_stored(a.machine_id).await? {
        let signals: Vec<Signal> = model.signals.iter().map(|m| m.signal.clone()).collect();
        let rows = load_signal_rows(
            store,
            a.machine_id,
            a.timestamp - Duration::hours(2),
            a.timestamp + Duration::milliseconds(1),
            &signals,
        )
        .await;
        if let Ok(data) = rows
            && let Some(i) = data.rows.iter().position(|iv| iv.sample.timestamp == a.timestamp)
        {
            let k = signals.len();
            reading_hours = Some(data.rows[i].hours);
            let iv = data.rows[i];
            let values = data.values[i * k..(i + 1) * k].to_vec();
            let parts = blocking(move || {
                let expectation = match &baseline {
                    Some(b) => Expectation::Baseline(b),
                    None => Expectation::Profile,
                };
                model.deviations_of(&iv, &values, &expectation)
            })
            .await?;
            contributions = explain::contributions(&parts);
        }
    }
    if contributions.is_empty() {
        contributions = explain::contributions(&[(a.metric.clone(), a.value, a.expected_value, a.deviation)]);
    }

    let (span_start, span_end) = episode.map_or((a.timestamp, a.timestamp), |e| (e.start, e.end));
    let excess_kwh = match episode.and_then(|e| Some(e.actual_kwh? - e.expected_kwh?)) {
        Some(k) => Some(k),
        None if a.metric == "power_kw" => reading_hours.map(|h| (a.value - a.expected_value) * h),
        None => None,
    };
    let excess = excess_kwh.map(|kwh| Excess {
        kwh,
        cost: explain::cost_over(kwh, span_start - reading_hours.map_or(Duration::zero(), hours), span_end, tariff),
        currency: tariff.currency.clone(),
    });

    // Past episodes of the kind, most alike first, with how they ended.
    let shape = |e: &EpisodeRecord| Shape {
        start: e.start,
        end: e.end,
        peak_value: e.peak_value,
        peak_expected: e.peak_expected,
    };
    let this = episode.map(shape).unwrap_or(Shape {
        start: a.timestamp,
        end: a.timestamp,
        peak_value: a.value,
        peak_expected: a.expected_value,
    });
    let mut similar: Vec<(f64, &EpisodeRecord)> = own
        .iter()
        .filter(|e| e.end < this.start && Some(e.id) != episode.map(|x| x.id))
        .map(|e| (explain::similarity(&this, &shape(e)), *e))
        .collect();
    similar.sort_by(|x, y| y.0.total_cmp(&x.0));
    similar.truncate(SIMILAR_SHOWN);
    let incidents = store
        .list_incidents(&IncidentQuery { machine_id: Some(a.machine_id), limit: PAST_EPISODES, ..Default::default() })
        .await?;
    let mut similar_episodes = Vec::new();
    for (score, e) in similar {
        let holder = incidents.iter().find(|i| {
            i.anomaly_type == e.anomaly_type && i.opened_at <= e.end && i.resolved_at.is_none_or(|r| r >= e.start)
        });
        let outcome = match holder {
            None => None,
            Some(i) => Some(match (i.state.as_str(), i.resolution.as_deref()) {
                ("resolved", Some("auto")) => "resolved by itself once the machine was normal".to_owned(),
                ("resolved", _) => {
                    let note = store
                        .incident_entries(i.id)
                        .await?
                        .into_iter()
                        .rev()
                        .find(|x| x.kind == "resolved")
                        .and_then(|x| x.text);
                    let by = i.resolved_by.clone().unwrap_or_else(|| "someone".into());
                    match note {
                        Some(n) => format!("resolved by {by}: {n}"),
                        None => format!("resolved by {by}"),
                    }
                }
                (state, _) => format!("its incident is still {state}"),
            }),
        };
        similar_episodes.push(SimilarEpisode {
            id: e.id,
            start: e.start,
            end: e.end,
            duration_min: minutes(e.start, e.end),
            peak_value: e.peak_value,
            peak_expected: e.peak_expected,
            similarity: score,
            outcome,
        });
    }

    let pattern = Pattern::of(&a.anomaly_type, a.value - a.expected_value);
    let checks = explain::checks_for(&machine.machine_type, pattern);
    let summary = explain::summary(&explain::Facts {
        machine: &machine.name,
        pattern,
        severity: &a.severity,
        metric: &a.metric,
        actual: a.value,
        expected: a.expected_value,
        at: a.timestamp,
        duration_min: episode.map(|e| minutes(e.start, e.end)),
        excess_kwh,
        cost: excess.as_ref().map(|x| (x.cost, x.currency.as_str())),
        top: contributions.first(),
        similar: similar_episodes.len(),
        first_check: checks.first().copied(),
    });
    Ok(Analysis {
        anomaly_id: a.id,
        machine_id: a.machine_id,
        machine_name: machine.name,
        machine_type: machine.machine_type,
        timestamp: a.timestamp,
        severity: a.severity.clone(),
        anomaly_type: a.anomaly_type.clone(),
        pattern: PatternFacts { name: pattern, description: pattern.describe() },
        expected_vs_actual: ExpectedActual {
            metric: a.metric.clone(),
            actual: a.value,
            expected: a.expected_value,
            deviation_pct: (a.expected_value.abs() > 1e-9)
                .then(|| (a.value - a.expected_value) / a.expected_value.abs() * 100.0),
            deviation_sigma: a.deviation,
        },
        episode: episode.map(|e| EpisodeFacts {
            id: e.id,
            start: e.start,
            end: e.end,
            duration_min: minutes(e.start, e.end),
            open: e.open,
            actual_kwh: e.actual_kwh,
            expected_kwh: e.expected_kwh,
        }),
        excess,
        contributions,
        similar_episodes,
        checks,
        summary,
    })
}

fn minutes(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_seconds() as f64 / 60.0
}

fn hours(h: f64) -> Duration {
    Duration::milliseconds((h * 3.6e6) as i64)
}
