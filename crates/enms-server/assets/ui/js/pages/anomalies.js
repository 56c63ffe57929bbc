// Anomalies, one row per episode: machine, type, severity, start, duration,
// peak against expected and excess energy. A row expands to its flagged
// readings (each can be explained: summary, contributing signals, excess
// cost, similar episodes, checks); acknowledging an episode acknowledges its
// readings. Filter by machine, severity, acknowledgement and day; episodes
// that open, escalate or end arrive as events and update their row in place.

import { api, qs, uiHref } from 'enms/api.js';
import { h, num, dateTime, sev, errorBox } from 'enms/dom.js';
import { toast } from 'enms/toast.js';
import { desktopToggle } from 'enms/desktop.js';
import { duration, episodeOf } from 'enms/episodes.js';

const LIMIT = 200;

export function mount(main, ctx) {
  const f = {
    machine: h('select', { id: 'f-machine' }, h('option', { value: '', text: 'All machines' })),
    severity: h('select', { id: 'f-severity' }, ['', 'warning', 'critical'].map((s) => h('option', { value: s, text: s || 'Any severity' }))),
    ack: h('select', { id: 'f-ack' }, [['', 'All'], ['false', 'Open'], ['true', 'Acknowledged']].map(([v, t]) => h('option', { value: v, text: t }))),
    since: h('input', { id: 'f-since', type: 'date', 'aria-label': 'Since' }),
  };
  const rows = h('tbody', { id: 'anomaly-rows' });
  const problem = h('div');
  const count = h('span', { class: 'muted small' });
  const panel = h('section', { id: 'analysis-panel', class: 'card', hidden: true });
  const byId = new Map(); // episode id → { row, detail, episode }
  let names = new Map();
  let disposed = false;
  main.append(h('h1', { text: 'Anomalies' }),
    h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', {}, 'Machine', f.machine), h('label', {}, 'Severity', f.severity), h('label', {}, 'Status', f.ack),
      h('label', {}, 'Since', f.since), h('button', { type: 'submit', text: 'Apply' }), count),
    h('p', { class: 'small' }, desktopToggle()),
    problem,
    h('div', { class: 'table-wrap' }, h('table', { class: 'episodes' },
      h('thead', {}, h('tr', {}, ['Start', 'Machine', 'Severity', 'Type', 'Duration', 'Peak', 'Expected', 'Excess kWh', 'Readings', ''].map((t) => h('th', { text: t })))),
      rows)),
    panel);
  for (const s of Object.values(f)) s.addEventListener('change', () => load());

  async function explain(id) {
    panel.hidden = false;
    panel.replaceChildren(h('p', { class: 'muted', text: 'Analysing…' }));
    try {
      const a = await api(`/api/v1/anomalies/${id}/analysis`);
      const pct = (v) => `${num(v, 0)} %`;
      panel.replaceChildren(
        h('h2', { text: `Analysis: ${a.anomaly_type} on ${a.machine_name}` }),
        h('p', { id: 'analysis-summary', text: a.summary }),
        h('p', { class: 'muted small', text: `Pattern: ${a.pattern.description}.` }),
        a.excess ? h('p', { id: 'analysis-excess', text: `Excess: ${num(a.excess.kwh)} kWh, ${num(a.excess.cost, 2)} ${a.excess.currency}` }) : null,
        h('h3', { text: 'Contributing signals' }),
        h('div', { class: 'table-wrap' }, h('table', { id: 'analysis-contributions' },
          h('thead', {}, h('tr', {}, ['Signal', 'Actual', 'Expected', 'σ', 'Share'].map((t) => h('th', { text: t })))),
          h('tbody', {}, a.contributions.map((c) => h('tr', {}, h('td', { text: c.signal }), h('td', { class: 'num', text: num(c.value) }),
            h('td', { class: 'num', text: num(c.expected) }), h('td', { class: 'num', text: num(c.z, 1) }), h('td', { class: 'num', text: pct(c.share_pct) })))))),
        h('h3', { text: 'Checks' }),
        h('ol', { id: 'analysis-checks' }, a.checks.map((c) => h('li', { text: c }))),
        h('h3', { text: 'Similar past episodes' }),
        a.similar_episodes.length
          ? h('ul', { id: 'analysis-similar' }, a.similar_episodes.map((e) => h('li', {
            text: `${dateTime(e.start)}, ${num(e.duration_min, 0)} min, peak ${num(e.peak_value)} vs ${num(e.peak_expected)} — ${e.outcome ?? 'no incident recorded'}`,
          })))
          : h('p', { class: 'muted small', text: 'None of this kind before.' }));
      panel.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      panel.replaceChildren(errorBox(e));
    }
  }

  /** The readings of an episode, as the expanded part of its row. */
  function readingsTable(list) {
    return h('table', { class: 'readings' },
      h('thead', {}, h('tr', {}, ['Time', 'Severity', 'Metric', 'Value', 'Expected', 'Score', ''].map((t) => h('th', { text: t })))),
      h('tbody', {}, list.map((a) => h('tr', { dataset: { anomalyId: a.id } },
        h('td', { text: dateTime(a.timestamp) }), h('td', {}, sev(a.severity)), h('td', { text: a.metric ?? '' }),
        h('td', { class: 'num', text: num(a.value) }), h('td', { class: 'num', text: num(a.expected_value) }),
        h('td', { class: 'num', text: num(a.anomaly_score, 3) }),
        h('td', {}, a.acknowledged_at ? h('span', { class: 'small muted ack', text: `✓ ${a.acknowledged_by ?? ''}` }) : null, ' ',
          h('button', { type: 'button', class: 'explain', text: 'Explain', onclick: () => explain(a.id) }))))));
  }

  async function expand(entry, open) {
    entry.detail.hidden = !open;
    entry.toggle.setAttribute('aria-expanded', String(open));
    entry.toggle.textContent = open ? '▾' : '▸';
    if (!open) return;
    entry.detailCell.replaceChildren(h('p', { class: 'muted small', text: 'Loading readings…' }));
    try {
      const e = entry.episode;
      const list = await api(`/api/v1/anomaly/recent${qs({ machine_id: e.machine_id, since: e.start,
        until: new Date(Date.parse(e.end) + 1).toISOString(), limit: 1000 })}`);
      const own = list.filter((a) => a.anomaly_type === e.anomaly_type).reverse();
      entry.detailCell.replaceChildren(own.length ? readingsTable(own) : h('p', { class: 'muted small', text: 'No stored readings.' }));
    } catch (err) {
      entry.detailCell.replaceChildren(errorBox(err));
    }
  }

  async function acknowledge(entry) {
    try {
      const e = await api(`/api/v1/anomaly/episodes/${entry.episode.id}/acknowledge`, { method: 'POST', body: { by: 'dashboard' } });
      entry.episode = { ...entry.episode, ...e };
      draw(entry);
      if (!entry.detail.hidden) expand(entry, true);
      toast({ kind: 'success', title: 'Episode acknowledged', message: `${e.readings?.length ?? 0} readings` });
    } catch (err) {
      toast({ kind: 'danger', title: 'Not acknowledged', message: err.message });
    }
  }

  /** (Re)draws a row's cells from its episode. */
  function draw(entry) {
    const e = entry.episode;
    const excess = e.actual_kwh != null && e.expected_kwh != null ? e.actual_kwh - e.expected_kwh : null;
    const action = e.acknowledged
      ? h('span', { class: 'small muted ack', text: '✓ acknowledged' })
      : h('button', { type: 'button', class: 'ack-episode', text: 'Acknowledge', onclick: () => acknowledge(entry) });
    entry.row.dataset.open = String(Boolean(e.open));
    entry.row.dataset.end = e.end;
    entry.row.dataset.severity = e.severity;
    entry.row.replaceChildren(
      h('td', {}, entry.toggle, ' ', dateTime(e.start)),
      h('td', {}, h('a', { href: uiHref(`machines/${e.machine_id}`), text: e.machine_name ?? names.get(e.machine_id)?.name ?? e.machine_id })),
      h('td', {}, sev(e.severity)), h('td', { text: e.anomaly_type }),
      h('td', { text: `${duration(e.start, e.end)}${e.open ? ' (open)' : ''}` }),
      h('td', { class: 'num', text: num(e.peak_value) }), h('td', { class: 'num', text: num(e.peak_expected) }),
      h('td', { class: 'num', text: num(excess) }), h('td', { class: 'num', text: String(e.count ?? '–') }),
      h('td', {}, action));
  }

  function entryFor(e, fresh) {
    const toggle = h('button', { type: 'button', class: 'expand', 'aria-expanded': 'false', 'aria-label': 'Readings', text: '▸' });
    const row = h('tr', { class: `episode${fresh ? ' fresh' : ''}`, dataset: { episodeId: e.id, machineId: e.machine_id, at: e.start } });
    const detailCell = h('td', { colspan: 10 });
    const detail = h('tr', { class: 'episode-readings', hidden: true }, detailCell);
    const entry = { row, detail, detailCell, toggle, episode: e };
    toggle.addEventListener('click', () => expand(entry, entry.detail.hidden));
    draw(entry);
    byId.set(e.id, entry);
    return entry;
  }

  function matches(e) {
    if (f.machine.value && e.machine_id !== f.machine.value) return false;
    if (f.severity.value && e.severity !== f.severity.value) return false;
    if (f.ack.value === 'true') return false;
    return !f.since.value || Date.parse(e.end ?? new Date()) >= new Date(`${f.since.value}T00:00`).getTime();
  }

  async function load() {
    problem.replaceChildren();
    try {
      names = await ctx.machines();
      if (f.machine.options.length === 1) {
        f.machine.append(...[...names.values()].map((m) => h('option', { value: m.id, text: m.name })));
      }
      const list = await api(`/api/v1/anomaly/episodes${qs({
        machine_id: f.machine.value, severity: f.severity.value,
        since: f.since.value ? new Date(`${f.since.value}T00:00`).toISOString() : '', limit: LIMIT,
      })}`);
      if (disposed) return;
      const shown = f.ack.value ? list.filter((e) => String(Boolean(e.acknowledged)) === f.ack.value) : list;
      byId.clear();
      rows.replaceChildren(...shown.flatMap((e) => { const x = entryFor(e, false); return [x.row, x.detail]; }));
      count.textContent = `${shown.length}${list.length === LIMIT ? '+' : ''} episodes`;
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  load();
  return {
    onEvent(ev) {
      if (ev.type !== 'anomaly_detected' && ev.type !== 'anomaly_updated') return;
      const e = episodeOf(ev.data ?? {});
      if (!e.id) return;
      const known = byId.get(e.id);
      if (known) {
        known.episode = { ...known.episode, ...e };
        draw(known);
        known.row.classList.remove('fresh');
        void known.row.offsetWidth;
        known.row.classList.add('fresh');
        return;
      }
      if (ev.type !== 'anomaly_detected' || !matches(e)) return;
      const x = entryFor(e, true);
      rows.prepend(x.row, x.detail);
      while (rows.children.length > 2 * LIMIT) rows.lastElementChild.remove();
    },
    onResync: load,
    unmount() { disposed = true; },
  };
}
