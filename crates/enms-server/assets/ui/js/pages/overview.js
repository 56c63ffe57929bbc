// Overview: a card per machine (live power from metric_updated, status,
// today's kWh and cost, a sparkline of the last three hours), counters, the
// recent anomaly episodes (one row each) and the training jobs, all kept
// current by events.

import { api, qs, uiHref } from 'enms/api.js';
import { h, num, money, time, sev, startOfToday, progressBar, setProgress, errorBox } from 'enms/dom.js';
import { sparkline } from 'enms/charts.js';
import { duration, episodeOf } from 'enms/episodes.js';

const SPARK_HOURS = 3;
const MAX_ROWS = 20;

function counter(label, id) {
  const value = h('div', { class: 'big', text: '–' });
  const el = h('div', { class: 'card counter', id }, h('div', { class: 'muted small', text: label }), value);
  return { el, value, set: (v) => { value.textContent = v; } };
}

function bump(c) {
  c.el.classList.remove('bump');
  void c.el.offsetWidth; // restart the animation
  c.el.classList.add('bump');
}

export function mount(main, ctx) {
  const anomaliesToday = counter('Episodes today', 'count-anomalies');
  const trainings = counter('Running trainings', 'count-trainings');
  const clients = counter('Connected clients', 'count-clients');
  const cards = h('div', { class: 'grid', id: 'machine-cards' });
  const anomalyRows = h('tbody', { id: 'recent-anomalies' });
  const jobRows = h('tbody', { id: 'training-jobs' });
  const problem = h('div');
  main.append(
    h('h1', { text: 'Overview' }), problem,
    h('div', { class: 'counters' }, anomaliesToday.el, trainings.el, clients.el),
    h('h2', { text: 'Machines' }), cards,
    h('h2', { text: 'Recent anomaly episodes' }),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Start', 'Machine', 'Severity', 'Type', 'Duration', 'Peak', 'Expected'].map((t) => h('th', { text: t })))),
      anomalyRows)),
    h('h2', { text: 'Training jobs' }),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Machine', 'Model', 'Status', 'Progress', 'Message', 'Started'].map((t) => h('th', { text: t })))),
      jobRows)),
  );

  const cardsById = new Map();
  const jobs = new Map(); // job id → {row, status}
  let todayCount = 0;
  let names = new Map();
  const timers = [];
  let disposed = false;

  const nameOf = (id) => names.get(id)?.name ?? id ?? '–';

  function machineCard(m) {
    const power = h('span', { class: 'big', text: '–' });
    const kwh = h('dd', { text: '–' });
    const cost = h('dd', { text: '–' });
    const seen = h('dd', { text: m.last_reading_at ? time(m.last_reading_at) : 'never' });
    const spark = h('div', { class: 'spark' });
    const status = h('span', { class: `dot ${m.status}`, title: m.status });
    const el = h('article', { class: 'card machine', dataset: { machineId: m.id } },
      h('h3', {}, status, h('a', { href: uiHref(`machines/${m.id}`), text: m.name })),
      h('div', { class: 'muted small', text: `${m.type}${m.location ? ` · ${m.location}` : ''}` }),
      h('div', {}, power, h('span', { class: 'muted', text: ' kW' })),
      h('dl', { class: 'kv' }, h('dt', { text: 'Today' }), kwh, h('dt', { text: 'Cost today' }), cost, h('dt', { text: 'Last reading' }), seen),
      spark);
    const card = { el, power, kwh, cost, seen, status, spark, chart: null, xs: [], ys: [] };
    cardsById.set(m.id, card);
    return card;
  }

  async function loadMachine(card, id) {
    const start = new Date(Date.now() - SPARK_HOURS * 3600e3).toISOString();
    const [series, kpi] = await Promise.all([
      api(`/api/v1/machines/${id}/readings${qs({ start, resolution: '1m', limit: 1000 })}`),
      api(`/api/v1/machines/${id}/kpis${qs({ start: startOfToday().toISOString() })}`).catch(() => null),
    ]);
    if (disposed) return;
    card.xs = series.points.map((p) => Date.parse(p.timestamp) / 1000);
    card.ys = series.points.map((p) => p.power_kw);
    if (card.ys.length) card.power.textContent = num(card.ys.at(-1));
    card.chart?.dispose();
    card.chart = sparkline(card.spark, card.xs, card.ys);
    if (kpi) showKpi(card, kpi);
  }

  function showKpi(card, kpi) {
    card.kwh.textContent = `${num(kpi.kpis.total_kwh)} kWh`;
    card.cost.textContent = money(kpi.kpis.cost.total, kpi.kpis.cost.currency);
  }

  async function refreshKpis() {
    const start = startOfToday().toISOString();
    await Promise.all([...cardsById].map(async ([id, card]) => {
      const kpi = await api(`/api/v1/machines/${id}/kpis${qs({ start })}`).catch(() => null);
      if (kpi && !disposed) showKpi(card, kpi);
    }));
  }

  // One row per episode, updated in place as it escalates and ends.
  function anomalyRow(e, fresh) {
    return h('tr', { class: fresh ? 'fresh' : '', dataset: { episodeId: e.id } },
      h('td', { text: time(e.start) }), h('td', { text: e.machine_name ?? nameOf(e.machine_id) }),
      h('td', {}, sev(e.severity)), h('td', { text: e.anomaly_type }),
      h('td', { text: `${duration(e.start, e.end)}${e.open ? ' (open)' : ''}` }),
      h('td', { class: 'num', text: num(e.peak_value) }), h('td', { class: 'num', text: num(e.peak_expected) }));
  }

  function upsertEpisode(d, announced) {
    const e = episodeOf(d);
    const old = [...anomalyRows.children].find((r) => r.dataset.episodeId === String(e.id));
    if (old) {
      old.replaceWith(anomalyRow(e, true));
      return;
    }
    if (!announced) return;
    if (!e.start || Date.parse(e.start) >= startOfToday().getTime()) {
      todayCount += 1;
      anomaliesToday.set(todayCount);
      bump(anomaliesToday);
    }
    anomalyRows.prepend(anomalyRow(e, true));
    while (anomalyRows.children.length > MAX_ROWS) anomalyRows.lastElementChild.remove();
  }

  function upsertJob(j) {
    const id = j.job_id ?? j.id;
    let job = jobs.get(id);
    if (!job) {
      const bar = progressBar(0);
      const pct = h('span', { class: 'small muted' });
      const cells = { status: h('td'), message: h('td', { class: 'small' }), bar, pct, started: h('td', { class: 'hide-narrow' }) };
      const row = h('tr', { dataset: { jobId: id } }, h('td', { text: nameOf(j.machine_id) }), h('td', { text: j.model_type ?? '–' }),
        cells.status, h('td', {}, h('div', { class: 'row' }, bar, pct)), cells.message, cells.started);
      job = { row, cells, status: null };
      jobs.set(id, job);
      jobRows.prepend(row);
      while (jobRows.children.length > MAX_ROWS) jobRows.lastElementChild.remove();
    }
    job.status = j.status ?? job.status;
    const pctValue = j.status === 'completed' ? 100 : j.progress_pct ?? 0;
    job.cells.status.textContent = job.status;
    setProgress(job.cells.bar, pctValue, job.status);
    job.cells.pct.textContent = `${Math.round(pctValue)} %`;
    job.cells.message.textContent = j.error_message ?? j.message ?? '';
    if (j.started_at || !job.cells.started.textContent) job.cells.started.textContent = time(j.started_at ?? j.created_at ?? new Date());
    trainings.set([...jobs.values()].filter((x) => x.status === 'running' || x.status === 'queued').length);
  }

  async function refreshClients() {
    const health = await api('/api/v1/health').catch(() => null);
    if (health && !disposed) clients.set(health.websocket?.connections ?? '–');
  }

  async function load() {
    problem.replaceChildren();
    try {
      names = await ctx.machines(true);
      cards.replaceChildren(...[...names.values()].map((m) => (cardsById.get(m.id) ?? machineCard(m)).el));
      if (!names.size) cards.append(h('p', { class: 'muted', text: 'No machines yet. Create one with POST /api/v1/machines or start with --demo.' }));
      const since = startOfToday().toISOString();
      const [today, recent, jobList] = await Promise.all([
        api(`/api/v1/anomaly/episodes${qs({ since, limit: 500 })}`),
        api(`/api/v1/anomaly/episodes${qs({ limit: MAX_ROWS })}`),
        api(`/api/v1/training/jobs${qs({ limit: MAX_ROWS })}`),
      ]);
      if (disposed) return;
      todayCount = today.length;
      anomaliesToday.set(todayCount >= 500 ? '500+' : todayCount);
      anomalyRows.replaceChildren(...recent.map((a) => anomalyRow(a, false)));
      jobs.clear();
      jobRows.replaceChildren();
      for (const j of [...jobList].reverse()) upsertJob(j);
      if (!jobList.length) trainings.set(0);
      await Promise.all([refreshClients(), ...[...cardsById].map(([id, card]) => loadMachine(card, id).catch(console.warn))]);
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  function onMetric(d) {
    const card = cardsById.get(d.machine_id);
    if (!card || d.metric_name !== 'power_kw') return;
    const t = Date.parse(d.timestamp ?? new Date()) / 1000;
    card.power.textContent = num(d.value);
    card.seen.textContent = time(t * 1000);
    card.status.className = 'dot online';
    if (card.xs.length && t <= card.xs.at(-1)) return;
    card.xs.push(t);
    card.ys.push(d.value);
    while (card.xs.length && card.xs[0] < t - SPARK_HOURS * 3600) { card.xs.shift(); card.ys.shift(); }
    card.chart?.setData([card.xs, card.ys]);
  }

  function onEvent(ev) {
    const d = ev.data ?? {};
    switch (ev.type) {
      case 'metric_updated': onMetric(d); break;
      case 'anomaly_detected':
        upsertEpisode(d, !d.details?.escalated);
        break;
      case 'anomaly_updated':
        upsertEpisode(d, false);
        break;
      case 'training_started': case 'training_progress': case 'training_completed':
        upsertJob(d);
        break;
      default:
    }
  }

  load();
  timers.push(setInterval(refreshClients, 10_000), setInterval(refreshKpis, 60_000));
  return {
    onEvent,
    onResync: load,
    unmount() {
      disposed = true;
      timers.forEach(clearInterval);
      for (const c of cardsById.values()) c.chart?.dispose();
    },
  };
}
