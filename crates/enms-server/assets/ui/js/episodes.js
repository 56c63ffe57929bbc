// Anomaly episodes as the pages show them: their duration, and the episode
// an `anomaly_detected` or `anomaly_updated` event speaks of.

/** "4 min", "2 h 5 min", "1 d 3 h" between two times. */
export function duration(start, end) {
  const min = Math.max(0, Math.round((Date.parse(end) - Date.parse(start)) / 60_000));
  if (min < 60) return `${min} min`;
  if (min < 1440) return `${Math.floor(min / 60)} h ${min % 60} min`;
  return `${Math.floor(min / 1440)} d ${Math.floor((min % 1440) / 60)} h`;
}

/** The episode an `anomaly_detected`/`anomaly_updated` event speaks of, as
 *  the episode list gives it (an event without one is a one-reading episode). */
export function episodeOf(d) {
  const e = d.details?.episode;
  if (!e) {
    return { id: d.anomaly_id, machine_id: d.machine_id, anomaly_type: d.anomaly_type, severity: d.severity,
      start: d.timestamp, end: d.timestamp, peak_value: d.value, peak_expected: d.expected_value, count: 1, open: false };
  }
  return { ...e, machine_id: d.machine_id, anomaly_type: d.anomaly_type, severity: d.severity };
}
