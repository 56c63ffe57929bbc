// One machine: power over a chosen range with the active baseline's expected
// value and its 95 % band, anomaly markers, every reading's anomaly score
// under the active anomaly model, KPIs and CUSUM; buttons that run anomaly
// detection over the window and train a baseline with live progress.

import { api, qs } from 'enms/api.js';
import { h, num, money, dateTime, progressBar, setProgress, errorBox } from 'enms/dom.js';
import { timeChart } from 'enms/charts.js';
import { toast } from 'enms/toast.js';

const RANGES = [
  { key: '6h', label: '6 hours', hours: 6, resolution: '1m' },
  { key: '24h', label: '24 hours', hours: 24, resolution: '1m' },
  { key: '7d', label: '7 days', hours: 168, resolution: '15m' },
  { key: '30d', label: '30 days', hours: 720, resolution: '1h' },
];
const PERIOD_HOURS = { hourly: 1, daily: 24 };

/** Index of the x nearest to t (xs sorted). */
function nearest(xs, t) {
  let lo = 0;
  let hi = xs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < t) lo = mid + 1; else hi = mid;
  }
  return lo > 0 && Math.abs(xs[lo - 1] - t) < Math.abs(xs[lo] - t) ? lo - 1 : lo;
}

export function mount(main, ctx, id) {
  let range = RANGES[1];
  let disposed = false;
  let data = null; // {xs, actual, expected, hi, lo, marks}
  const title = h('h1', { text: 'Machine' });
  const problem = h('div');
  const rangeSelect = h('select', { id: 'range', 'aria-label': 'Range', onchange: () => { range = RANGES.find((r) => r.key === rangeSelect.value); load(); } },
    RANGES.map((r) => h('option', { value: r.key, text: r.label, selected: r === range })));
  const detectBtn = h('button', { type: 'button', id: 'detect', text: 'Detect anomalies in this window', onclick: detect });
  const trainBtn = h('button', { type: 'button', id: 'train', class: 'primary', text: 'Train baseline', onclick: () => train('baseline') });
  const trainAnomalyBtn = h('button', { type: 'button', id: 'train-anomaly', text: 'Train anomaly model', onclick: () => train('anomaly') });
  const jobBar = progressBar(0);
  const jobText = h('span', { class: 'small muted', id: 'job-text' });
  const jobBox = h('div', { class: 'row', id: 'job', hidden: true }, jobBar, jobText);
  const chartBox = h('div', { class: 'chart', id: 'power-chart' });
  const scoreBox = h('div', { class: 'chart', id: 'score-chart', 'data-points': '0' });
  const scoreNote = h('p', { class: 'muted small', id: 'score-note' });
  const kpiBox = h('dl', { class: 'kv', id: 'kpis' });
  const cusumBox = h('div', { class: 'chart', id: 'cusum-chart' });
  const baselineNote = h('p', { class: 'muted small' });
  const forecastBox = h('div', { class: 'chart', id: 'forecast-chart', 'data-points': '0' });
  const forecastNote = h('p', { class: 'muted small', id: 'forecast-note' });
  main.append(title, problem,
    h('div', { class: 'row' }, h('label', {}, 'Range', rangeSelect), detectBtn, trainBtn, trainAnomalyBtn),
    jobBox,
    h('div', { class: 'card' }, h('h2', { text: 'Power (kW)' }), baselineNote, chartBox),
    h('div', { class: 'card' }, h('h2', { text: 'Anomaly score' }), scoreNote, scoreBox),
    h('div', { class: 'card' }, h('h2', { text: 'Forecast: the next 24 h (kW)' }), forecastNote, forecastBox),
    h('div', { class: 'grid wide' },
      h('div', { class: 'card' }, h('h2', { text: 'KPIs for the window' }), kpiBox),
      h('div', { class: 'card' }, h('h2', { text: 'CUSUM: actual − expected (kWh)' }), cusumBox)));

  const chart = timeChart(chartBox, {
    yLabel: 'kW',
    series: [
      { label: 'Actual', stroke: '#1f5fbf', width: 1.5 },
      { label: 'Expected', stroke: '#17803d', width: 1.5, dash: [6, 4] },
      { label: 'Upper 95 %', stroke: 'rgba(23,128,61,.35)', width: 1 },
      { label: 'Lower 95 %', stroke: 'rgba(23,128,61,.35)', width: 1 },
      { label: 'Anomaly', stroke: '#b42318', width: 0, paths: () => null, points: { show: true, size: 9, fill: '#b42318' } },
    ],
    bands: [[3, 4]],
  });
  const cusum = timeChart(cusumBox, { height: 200, yLabel: 'kWh', series: [{ label: 'CUSUM', stroke: '#b7791f', width: 2 }] });
  const scoreChart = timeChart(scoreBox, {
    height: 160,
    yLabel: 'score',
    series: [
      { label: 'Score', stroke: '#6b3fa0', width: 1.2 },
      { label: 'Flagged', stroke: '#b42318', width: 0, paths: () => null, points: { show: true, size: 7, fill: '#b42318' } },
    ],
  });
  const forecastChart = timeChart(forecastBox, {
    height: 220,
    yLabel: 'kW',
    series: [
      { label: 'Actual', stroke: '#1f5fbf', width: 1.5 },
      { label: 'Forecast', stroke: '#6b3fa0', width: 1.5, dash: [6, 4] },
      { label: 'Upper 80 %', stroke: 'rgba(107,63,160,.45)', width: 1 },
      { label: 'Lower 80 %', stroke: 'rgba(107,63,160,.45)', width: 1 },
      { label: 'Upper 95 %', stroke: 'rgba(107,63,160,.25)', width: 1, dash: [2, 3] },
      { label: 'Lower 95 %', stroke: 'rgba(107,63,160,.25)', width: 1, dash: [2, 3] },
    ],
    bands: [[3, 4], [5, 6]],
  });
  let activeJob = null;

  function span() {
    const end = new Date();
    return { start: new Date(end - range.hours * 3600e3), end };
  }

  async function load() {
    problem.replaceChildren();
    const { start, end } = span();
    const w = { start: start.toISOString(), end: end.toISOString() };
    try {
      const machines = await ctx.machines();
      const m = machines.get(id) ?? await api(`/api/v1/machines/${id}`);
      title.textContent = `${m.name} · ${m.type}`;
      document.title = `${m.name} – enms`;
      const [series, kpi, anomalies] = await Promise.all([
        api(`/api/v1/machines/${id}/readings${qs({ ...w, resolution: range.resolution, limit: 10000 })}`),
        api(`/api/v1/machines/${id}/kpis${qs(w)}`),
        api(`/api/v1/anomaly/recent${qs({ machine_id: id, since: w.start, until: w.end, limit: 1000 })}`),
      ]);
      if (disposed) return;
      const model = kpi.baseline_model_id ? await api(`/api/v1/models/${kpi.baseline_model_id}`).catch(() => null) : null;
      draw(series.points, kpi, anomalies, model);
      showKpis(kpi, model);
      await loadScores(w);
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
    loadForecast().catch((e) => { forecastNote.textContent = `No forecast: ${e.message}`; });
  }

  // The next 24 h after the last complete hour, drawn after the last two
  // days of hourly means. Forecasts need 21 days of history: a machine
  // with less is told so without asking (the server would answer 422).
  async function loadForecast() {
    const since = new Date(Date.now() - 22 * 86400e3).toISOString();
    const days = await api(`/api/v1/machines/${id}/readings${qs({ start: since, resolution: '1d', limit: 100 })}`);
    const have = days.points.filter((p) => p.samples > 0).length;
    if (have < 21) {
      forecastNote.textContent = `Forecasts need 21 days of history; this machine has ${have} in the last three weeks.`;
      forecastChart.setData([[], [], [], [], [], [], []]);
      forecastBox.dataset.points = '0';
      return;
    }
    const f = await api(`/api/v1/machines/${id}/forecast`);
    const start = new Date(Date.parse(f.origin) - 48 * 3600e3).toISOString();
    const recent = await api(`/api/v1/machines/${id}/readings${qs({ start, end: f.origin, resolution: '1h', limit: 100 })}`);
    if (disposed) return;
    const past = recent.points.map((p) => [Date.parse(p.timestamp) / 1000, p.power_kw]);
    const ahead = f.points.map((p) => Date.parse(p.timestamp) / 1000);
    const blank = (n) => new Array(n).fill(null);
    const col = (k) => [...blank(past.length), ...f.points.map((p) => p[k])];
    forecastChart.setData([
      [...past.map((p) => p[0]), ...ahead],
      [...past.map((p) => p[1]), ...blank(ahead.length)],
      col('expected'), col('upper_80'), col('lower_80'), col('upper_95'), col('lower_95'),
    ]);
    forecastBox.dataset.points = String(f.points.length);
    const day1 = f.backtest.accuracy[0] ?? {};
    const naive = f.backtest.seasonal_naive[0] ?? {};
    const method = { seasonal_naive: 'Seasonal naive', weekly_profile: 'Weekly profile', profile_level: 'Weekly profile × recent level' }[f.method] ?? f.method;
    let text = `${method}, chosen by backtest over ${f.backtest.origins} days: day-ahead MAPE ${num(day1.mape_pct)} % `
      + `(seasonal naive ${num(naive.mape_pct)} %), bands cover ${num(day1.coverage_80_pct, 0)} % (80 %) and `
      + `${num(day1.coverage_95_pct, 0)} % (95 %) of actuals. ${num(f.expected_kwh, 0)} kWh expected.`;
    const t = f.threshold;
    if (t?.days_to_limit != null) {
      text += ` At this drift the daily peak reaches the rated ${num(t.limit)} kW in ${num(t.days_to_limit, 0)} days.`;
    } else if (t) {
      text += ` Daily peak trend ${num(t.slope_per_day, 2)} kW/day: the rated ${num(t.limit)} kW is not in reach.`;
    }
    forecastNote.textContent = text;
  }

  function draw(points, kpi, anomalies, model) {
    const xs = points.map((p) => Date.parse(p.timestamp) / 1000);
    const actual = points.map((p) => p.power_kw);
    const expected = new Array(xs.length).fill(null);
    const comparison = kpi.kpis.baseline;
    const rmse = model?.metrics?.rmse;
    if (comparison) {
      const hours = PERIOD_HOURS[comparison.granularity] ?? 1;
      const periods = comparison.cusum.map((c) => [Date.parse(c.timestamp) / 1000, c.expected_kwh / hours]);
      let j = 0;
      xs.forEach((x, i) => {
        while (j + 1 < periods.length && periods[j + 1][0] <= x) j += 1;
        if (periods[j] && x >= periods[j][0] && x < periods[j][0] + hours * 3600) expected[i] = periods[j][1];
      });
      baselineNote.textContent = `Expected from baseline v${kpi.baseline_version} (${comparison.granularity}); `
        + `band: 95 % interval of an ${comparison.granularity === 'daily' ? 'daily' : 'hourly'} mean, ±1.96 × RMSE${rmse != null ? ` (${num(rmse, 2)} kW)` : ''}.`;
    } else {
      baselineNote.textContent = 'No active baseline: train one to see the expected consumption.';
    }
    const band = rmse != null ? 1.96 * rmse : null;
    const hi = expected.map((e) => (e != null && band != null ? e + band : null));
    const lo = expected.map((e) => (e != null && band != null ? Math.max(0, e - band) : null));
    const marks = new Array(xs.length).fill(null);
    for (const a of anomalies) {
      if (!xs.length) break;
      const i = nearest(xs, Date.parse(a.timestamp) / 1000);
      marks[i] = a.metric === 'power_kw' ? a.value : actual[i];
    }
    data = { xs, actual, expected, hi, lo, marks };
    chart.setData([xs, actual, expected, hi, lo, marks]);
    const cs = comparison?.cusum ?? [];
    cusum.setData([cs.map((c) => Date.parse(c.timestamp) / 1000), cs.map((c) => c.cusum_kwh)]);
  }

  // Scores only under an active anomaly model (asking without one would be
  // a 409 the console reports as an error).
  async function loadScores(w) {
    const models = await api(`/api/v1/models${qs({ machine_id: id, model_type: 'anomaly' })}`);
    const active = models.find((m) => m.active);
    if (!active) {
      scoreNote.textContent = 'No active anomaly model: train one to see each reading\'s score.';
      scoreChart.setData([[], [], []]);
      scoreBox.dataset.points = '0';
      return;
    }
    const r = await api(`/api/v1/machines/${id}/scores${qs(w)}`);
    if (disposed) return;
    readingBand(r.scores, active.version);
    const xs = r.scores.map((p) => Date.parse(p.timestamp) / 1000);
    const flagged = r.scores.map((p) => (p.severity === 'normal' ? null : p.score));
    scoreChart.setData([xs, r.scores.map((p) => p.score), flagged]);
    scoreBox.dataset.points = String(xs.length);
    const m = active.metrics ?? {};
    scoreNote.textContent = `0 to 1: one minus the share of training readings at least as unusual, under anomaly model v${active.version}`
      + ` (${(m.signals ?? ['power_kw']).join(', ')}; budget ${num((m.contamination ?? 0) * 100, 2)} %).`;
  }

  // Below hourly points the band is a reading's, not an hourly mean's: the
  // anomaly model's expectation of each reading and its spread at that level
  // and operating state (the scores answer carries both), ±1.96 σ.
  function readingBand(scores, version) {
    if (!data || range.resolution === '1h' || !data.xs.length) return;
    const withBand = scores.filter((p) => p.expected_power_kw != null && p.sigma_power_kw != null);
    if (!withBand.length) return;
    const ts = withBand.map((p) => Date.parse(p.timestamp) / 1000);
    const step = data.xs.length > 1 ? data.xs[1] - data.xs[0] : 60;
    data.xs.forEach((x, i) => {
      // A point stands for the bucket [x, x + step); its readings end in it.
      const j = nearest(ts, x + step / 2);
      if (Math.abs(ts[j] - (x + step / 2)) > Math.max(step, 900)) return;
      const p = withBand[j];
      data.expected[i] = p.expected_power_kw;
      data.hi[i] = p.expected_power_kw + 1.96 * p.sigma_power_kw;
      data.lo[i] = Math.max(0, p.expected_power_kw - 1.96 * p.sigma_power_kw);
    });
    chart.setData([data.xs, data.actual, data.expected, data.hi, data.lo, data.marks]);
    baselineNote.textContent = `Expected by anomaly model v${version}; band: 95 % interval of a reading, `
      + '±1.96 × its spread at that level and operating state.';
    chartBox.dataset.band = 'reading';
  }

  function showKpis(kpi, model) {
    const k = kpi.kpis;
    const b = k.baseline;
    const rows = [
      ['Energy', `${num(k.total_kwh)} kWh`], ['Peak', k.peak_kw != null ? `${num(k.peak_kw)} kW at ${dateTime(k.peak_at)}` : '–'],
      ['Average', `${num(k.average_kw)} kW`], ['Load factor', k.load_factor != null ? `${num(k.load_factor * 100)} %` : '–'],
      ['Production', num(k.production_units, 0)], ['SEC', k.sec_kwh_per_unit != null ? `${num(k.sec_kwh_per_unit, 3)} kWh/unit` : '–'],
      ['Cost', money(k.cost.total, k.cost.currency)],
      ['Expected (baseline)', b ? `${num(b.expected_kwh)} kWh` : '–'],
      ['Savings', b ? `${num(b.savings_kwh)} kWh${b.savings_pct != null ? ` (${num(b.savings_pct)} %)` : ''}` : '–'],
      ['Baseline quality', model ? `R² ${num(model.metrics.r_squared, 3)}, CV(RMSE) ${num(model.metrics.cv_rmse_pct)} %, G14 ${model.metrics.g14_pass ? 'pass' : 'fail'}` : '–'],
    ];
    kpiBox.replaceChildren(...rows.flatMap(([k2, v]) => [h('dt', { text: k2 }), h('dd', { text: v })]));
  }

  async function detect() {
    detectBtn.disabled = true;
    const { start, end } = span();
    try {
      const r = await api(`/api/v1/anomaly/detect/${id}`, { method: 'POST', body: { start: start.toISOString(), end: end.toISOString(), use_baseline: true } });
      const sevs = Object.entries(r.by_severity).map(([s, n]) => `${n} ${s}`).join(', ');
      toast({ kind: r.anomalies_detected ? 'warning' : 'success', title: `Detection: ${r.episodes_detected} episodes, ${r.anomalies_detected} anomalous readings of ${r.readings_analyzed}`, message: sevs });
      await load();
    } catch (e) {
      toast({ kind: 'danger', title: 'Detection failed', message: e.message });
    } finally {
      detectBtn.disabled = false;
    }
  }

  async function train(modelType) {
    try {
      const job = modelType === 'baseline'
        ? await api(`/api/v1/baseline/train/${id}`, { method: 'POST', body: {} })
        : await api(`/api/v1/model-performance/retrain/trigger${qs({ model_type: modelType, machine_id: id })}`, { method: 'POST' });
      activeJob = job.id ?? job.training_job_id;
      showJob({ status: job.status ?? 'queued', progress_pct: 0, message: `${modelType} training queued` });
    } catch (e) {
      toast({ kind: 'danger', title: 'Training not started', message: e.message });
    }
  }

  function showJob(d) {
    jobBox.hidden = false;
    const pct = d.status === 'completed' ? 100 : d.progress_pct ?? 0;
    setProgress(jobBar, pct, d.status);
    jobText.textContent = `${Math.round(pct)} % · ${d.status} · ${d.error_message ?? d.message ?? ''}`;
  }

  function onEvent(ev) {
    const d = ev.data ?? {};
    if (d.machine_id !== id) return;
    if (ev.type.startsWith('training_') && (d.job_id === activeJob || !activeJob)) {
      activeJob = d.job_id;
      showJob(d);
      if (ev.type === 'training_completed') load();
    } else if (ev.type === 'training_completed' && d.status === 'completed') {
      // Another job of this machine (the demo's first anomaly model, say):
      // its model changes the band and the scores.
      load();
    } else if (ev.type === 'metric_updated' && d.metric_name === 'power_kw' && data && range.hours <= 24) {
      const t = Date.parse(d.timestamp ?? new Date()) / 1000;
      if (data.xs.length && t <= data.xs.at(-1)) return;
      for (const [k, v] of [['xs', t], ['actual', d.value], ['expected', data.expected.at(-1) ?? null],
        ['hi', data.hi.at(-1) ?? null], ['lo', data.lo.at(-1) ?? null], ['marks', null]]) data[k].push(v);
      chart.setData([data.xs, data.actual, data.expected, data.hi, data.lo, data.marks]);
    } else if (ev.type === 'anomaly_detected' && data?.xs.length) {
      const i = nearest(data.xs, Date.parse(d.timestamp ?? new Date()) / 1000);
      data.marks[i] = d.value ?? data.actual[i];
      chart.setData([data.xs, data.actual, data.expected, data.hi, data.lo, data.marks]);
    }
  }

  load();
  return { onEvent, onResync: load, unmount() { disposed = true; chart.dispose(); cusum.dispose(); scoreChart.dispose(); } };
}
