// Hosts: a card per machine of type host with its newest sample, and the
// chosen host's CPU and memory, disk, network and power over the last hour,
// live at the sampling rate — every host reading arrives as metric_updated
// with its signals in `values` (docs/hosts.md). Under the disk chart, each
// disk's trend: when it reaches 90 % (docs/forecasts.md).

import { api, qs, uiHref } from 'enms/api.js';
import { h, num, time, errorBox } from 'enms/dom.js';
import { timeChart } from 'enms/charts.js';

const WINDOW_S = 3600;

const CHARTS = [
  { id: 'host-cpu-chart', title: 'CPU and memory', yLabel: '%', series: [
    { key: 'cpu_percent', label: 'CPU %', stroke: '#1f5fbf', width: 1.5 },
    { key: 'memory_percent', label: 'Memory %', stroke: '#17803d', width: 1.5 },
  ] },
  { id: 'host-disk-chart', title: 'Disk', yLabel: '% used', series: [
    { key: 'disk_percent', label: 'Disk %', stroke: '#8a4b08', width: 1.5 },
    { key: 'swap_percent', label: 'Swap %', stroke: '#7a3e9d', width: 1, dash: [4, 3] },
  ] },
  { id: 'host-net-chart', title: 'Network and disk I/O', yLabel: 'B/s', series: [
    { key: 'network_recv_bytes_per_s', label: 'Received', stroke: '#1f5fbf', width: 1.5 },
    { key: 'network_sent_bytes_per_s', label: 'Sent', stroke: '#b3261e', width: 1.5 },
    { key: 'disk_read_bytes_per_s', label: 'Disk read', stroke: '#17803d', width: 1, dash: [4, 3] },
    { key: 'disk_write_bytes_per_s', label: 'Disk write', stroke: '#8a4b08', width: 1, dash: [4, 3] },
  ] },
  { id: 'host-power-chart', title: 'Power', yLabel: 'kW', series: [
    { key: 'power_kw', label: 'Power kW', stroke: '#333', width: 1.5 },
  ] },
];

/** A flat sample (from the API) or a metric_updated event, as one point. */
function point(s) {
  const v = s.values ?? s;
  const p = { t: Date.parse(s.timestamp) / 1000, power_kw: s.power_kw ?? s.value };
  for (const c of CHARTS) for (const { key } of c.series) if (key !== 'power_kw') p[key] = v[key] ?? null;
  return p;
}

export function mount(main, ctx, chosenId) {
  const cards = h('div', { class: 'grid', id: 'host-cards' });
  const detail = h('section', { id: 'host-detail' });
  const problem = h('div');
  main.append(h('h1', { text: 'Hosts' }), problem, cards, detail);

  const cardsById = new Map();
  let hosts = [];
  let selected = null; // { id, points, charts, last }
  let disposed = false;

  function card(host) {
    const fields = {
      cpu: h('dd', { class: 'cpu', text: '–' }), mem: h('dd', { class: 'mem', text: '–' }),
      disk: h('dd', { class: 'disk', text: '–' }), power: h('dd', { class: 'power', text: '–' }),
      seen: h('dd', { class: 'seen', text: '–' }),
    };
    const el = h('article', { class: 'card machine host', dataset: { machineId: host.machine_id } },
      h('h3', {}, h('a', { href: uiHref(`hosts/${host.machine_id}`), text: host.name })),
      h('dl', { class: 'kv' },
        h('dt', { text: 'CPU' }), fields.cpu, h('dt', { text: 'Memory' }), fields.mem,
        h('dt', { text: 'Disk' }), fields.disk, h('dt', { text: 'Power' }), fields.power,
        h('dt', { text: 'Last sample' }), fields.seen));
    const c = { el, fields };
    cardsById.set(host.machine_id, c);
    if (host.latest) show(c, host.latest);
    return c;
  }

  function show(c, s) {
    const v = s.values ?? s;
    c.fields.cpu.textContent = `${num(v.cpu_percent)} %`;
    c.fields.mem.textContent = `${num(v.memory_percent)} %`;
    c.fields.disk.textContent = `${num(v.disk_percent)} %`;
    const estimated = s.power_estimated ?? v.power_estimated >= 0.5;
    c.fields.power.textContent = `${num(s.power_kw ?? s.value, 3)} kW${estimated ? ' (estimated)' : ''}`;
    c.fields.seen.textContent = time(s.timestamp);
  }

  function draw() {
    if (!selected) return;
    const xs = selected.points.map((p) => p.t);
    for (const [i, c] of CHARTS.entries()) {
      selected.charts[i].setData([xs, ...c.series.map(({ key }) => selected.points.map((p) => p[key]))]);
    }
  }

  async function select(host) {
    for (const ch of selected?.charts ?? []) ch.dispose();
    selected = null;
    detail.replaceChildren();
    if (!host) return;
    for (const [id, c] of cardsById) c.el.classList.toggle('selected', id === host.machine_id);
    const boxes = CHARTS.map((c) => h('div', { class: 'chart', id: c.id }));
    const trends = h('ul', { class: 'disk-trends', id: 'host-disk-trends' });
    detail.append(h('h2', { text: `${host.name}: the last hour` }),
      ...CHARTS.flatMap((c, i) => [h('h3', { text: c.title }), boxes[i], ...(c.id === 'host-disk-chart' ? [trends] : [])]));
    diskTrends(trends, host.machine_id);
    const charts = CHARTS.map((c, i) => timeChart(boxes[i], { series: c.series, height: 200, yLabel: c.yLabel }));
    selected = { id: host.machine_id, points: [], charts };
    const start = new Date(Date.now() - WINDOW_S * 1000).toISOString();
    const history = await api(`/api/metrics/history${qs({ host: host.name, start, limit: 10000 })}`);
    if (disposed || selected?.id !== host.machine_id) return;
    // Live samples that arrived while the history loaded stay after it.
    const live = selected.points;
    selected.points = history.samples.map(point);
    const lastT = selected.points.at(-1)?.t ?? 0;
    selected.points.push(...live.filter((p) => p.t > lastT));
    draw();
  }

  /** Each disk's line to 90 %, from the last two weeks of samples. */
  async function diskTrends(list, id) {
    try {
      const { thresholds } = await api(`/api/v1/machines/${id}/thresholds`);
      const disks = thresholds.filter((t) => t.name.startsWith('disk_percent'));
      if (disposed) return;
      if (!disks.length) {
        list.replaceChildren(h('li', { class: 'muted', text: 'Disk trend: needs samples spanning 3 days.' }));
        return;
      }
      list.replaceChildren(...disks.map((t) => {
        const disk = t.name === 'disk_percent' ? 'Disk' : `Disk ${t.name.slice('disk_percent.'.length).replaceAll('.', '/')}`;
        const rate = `${t.slope_per_day >= 0 ? '+' : ''}${num(t.slope_per_day, 2)} %/day`;
        const when = t.days_to_limit === null || t.days_to_limit === undefined
          ? 'not rising toward 90 %'
          : t.days_to_limit === 0 ? 'at or over 90 %' : `90 % full in ${num(t.days_to_limit, 0)} days (${new Date(t.reaches_at).toLocaleDateString()})`;
        return h('li', { class: t.days_to_limit !== null && t.days_to_limit !== undefined && t.days_to_limit < 30 ? 'warn' : '',
          text: `${disk}: ${num(t.current, 1)} % now, ${rate} — ${when}` });
      }));
    } catch (e) {
      list.replaceChildren(h('li', { class: 'muted', text: `Disk trend unavailable: ${e.message}` }));
    }
  }

  async function load() {
    problem.replaceChildren();
    try {
      hosts = await api('/api/v1/hosts');
      if (disposed) return;
      cards.replaceChildren(...hosts.map((x) => card(x).el));
      if (!hosts.length) {
        cards.append(h('p', { class: 'muted', id: 'no-hosts',
          text: 'No host yet. Run `enms agent --server URL` on a host, or start the server with --monitor-self.' }));
      }
      const chosen = hosts.find((x) => x.machine_id === chosenId) ?? hosts[0];
      await select(chosen);
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  function onEvent(ev) {
    const d = ev.data ?? {};
    if (ev.type !== 'metric_updated' || d.values?.cpu_percent === undefined) return;
    const c = cardsById.get(d.machine_id);
    if (!c) {
      load(); // a new host registered
      return;
    }
    show(c, d);
    if (selected?.id !== d.machine_id) return;
    const p = point(d);
    if (selected.points.length && p.t <= selected.points.at(-1).t) return;
    selected.points.push(p);
    while (selected.points.length && selected.points[0].t < p.t - WINDOW_S) selected.points.shift();
    draw();
  }

  load();
  return {
    onEvent,
    onResync: load,
    unmount() {
      disposed = true;
      for (const ch of selected?.charts ?? []) ch.dispose();
    },
  };
}
