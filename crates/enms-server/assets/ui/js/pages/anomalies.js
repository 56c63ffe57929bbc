// Anomalies: filter by machine, severity, acknowledgement and day; acknowledge
// one; explain one (the analysis panel: summary, contributing signals, excess
// cost, similar episodes, checks); new anomalies that match the filters
// appear at the top as they arrive.

import { api, qs, uiHref } from 'enms/api.js';
import { h, num, dateTime, sev, errorBox } from 'enms/dom.js';
import { toast } from 'enms/toast.js';

export function mount(main, ctx) {
  const f = {
    machine: h('select', { id: 'f-machine' }, h('option', { value: '', text: 'All machines' })),
    severity: h('select', { id: 'f-severity' }, ['', 'warning', 'critical', 'normal'].map((s) => h('option', { value: s, text: s || 'Any severity' }))),
    ack: h('select', { id: 'f-ack' }, [['', 'All'], ['false', 'Open'], ['true', 'Acknowledged']].map(([v, t]) => h('option', { value: v, text: t }))),
    since: h('input', { id: 'f-since', type: 'date', 'aria-label': 'Since' }),
  };
  const rows = h('tbody', { id: 'anomaly-rows' });
  const problem = h('div');
  const count = h('span', { class: 'muted small' });
  const panel = h('section', { id: 'analysis-panel', class: 'card', hidden: true });
  let names = new Map();
  let disposed = false;
  main.append(h('h1', { text: 'Anomalies' }),
    h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', {}, 'Machine', f.machine), h('label', {}, 'Severity', f.severity), h('label', {}, 'Status', f.ack),
      h('label', {}, 'Since', f.since), h('button', { type: 'submit', text: 'Apply' }), count),
    problem,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Time', 'Machine', 'Severity', 'Type', 'Metric', 'Value', 'Expected', 'Score', ''].map((t) => h('th', { text: t })))),
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

  function row(a, fresh) {
    const id = a.id ?? a.anomaly_id;
    const action = h('td');
    const explainBtn = () => h('button', { type: 'button', class: 'explain', text: 'Explain', onclick: () => explain(id) });
    const setAck = (rec) => action.replaceChildren(rec.acknowledged_at
      ? h('span', { class: 'small muted', text: `✓ ${rec.acknowledged_by ?? ''} ` })
      : h('button', { type: 'button', text: 'Acknowledge', onclick: () => acknowledge(id, setAck) }), ' ', explainBtn());
    setAck(a);
    return h('tr', { class: fresh ? 'fresh' : '', dataset: { anomalyId: id, machineId: a.machine_id, at: a.timestamp } },
      h('td', { text: dateTime(a.timestamp) }),
      h('td', {}, h('a', { href: uiHref(`machines/${a.machine_id}`), text: a.machine_name ?? names.get(a.machine_id)?.name ?? a.machine_id })),
      h('td', {}, sev(a.severity)), h('td', { text: a.anomaly_type }), h('td', { text: a.metric ?? '' }),
      h('td', { class: 'num', text: num(a.value) }), h('td', { class: 'num', text: num(a.expected_value) }),
      h('td', { class: 'num', text: num(a.anomaly_score, 3) }), action);
  }

  async function acknowledge(id, done) {
    try {
      done(await api(`/api/v1/anomalies/${id}/acknowledge`, { method: 'POST', body: { by: 'dashboard' } }));
      toast({ kind: 'success', title: 'Anomaly acknowledged' });
    } catch (e) {
      toast({ kind: 'danger', title: 'Not acknowledged', message: e.message });
    }
  }

  function matches(d) {
    if (f.machine.value && d.machine_id !== f.machine.value) return false;
    if (f.severity.value && d.severity !== f.severity.value) return false;
    if (f.ack.value === 'true') return false;
    return !f.since.value || Date.parse(d.timestamp ?? new Date()) >= new Date(`${f.since.value}T00:00`).getTime();
  }

  async function load() {
    problem.replaceChildren();
    try {
      names = await ctx.machines();
      if (f.machine.options.length === 1) {
        f.machine.append(...[...names.values()].map((m) => h('option', { value: m.id, text: m.name })));
      }
      const list = await api(`/api/v1/anomaly/recent${qs({
        machine_id: f.machine.value, severity: f.severity.value, acknowledged: f.ack.value,
        since: f.since.value ? new Date(`${f.since.value}T00:00`).toISOString() : '', limit: 500,
      })}`);
      if (disposed) return;
      rows.replaceChildren(...list.map((a) => row(a, false)));
      count.textContent = `${list.length}${list.length === 500 ? '+' : ''} shown`;
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  load();
  return {
    onEvent(ev) {
      if (ev.type !== 'anomaly_detected' || !matches(ev.data)) return;
      rows.prepend(row(ev.data, true));
      while (rows.children.length > 500) rows.lastElementChild.remove();
    },
    onResync: load,
    unmount() { disposed = true; },
  };
}
