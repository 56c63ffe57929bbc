// Live events: the stream as it arrives, newest first, filtered by type and
// machine, with pause (events keep arriving and are held until resumed).
// Starts from the last 100 events of the log.

import { api, qs } from 'enms/api.js';
import { h, time, errorBox } from 'enms/dom.js';
import { idKey } from 'enms/realtime.js';

const TYPES = ['anomaly_detected', 'anomaly_updated', 'metric_updated', 'training_started', 'training_progress',
  'training_completed', 'model_updated', 'system_alert'];
const MAX = 500;

function summary(ev, names) {
  const d = ev.data ?? {};
  const who = d.machine_name ?? names.get(d.machine_id)?.name ?? d.machine_id ?? '';
  switch (ev.type) {
    case 'anomaly_detected': return `${who}: ${d.severity} ${d.anomaly_type} ${d.metric ?? ''} = ${d.value ?? ''}${d.details?.escalated ? ' (escalated)' : ''}`;
    case 'anomaly_updated': return `${who}: ${d.anomaly_type} episode ended after ${d.details?.episode?.count ?? '?'} readings (${d.severity})`;
    case 'metric_updated': return `${who}: ${d.metric_name} = ${d.value} ${d.unit ?? ''}`;
    case 'system_alert': return `${d.severity} ${d.alert_type}: ${d.message}`;
    case 'model_updated': return `${who}: ${d.model_type ?? ''} v${d.version ?? ''}`;
    default: return `${who}: ${d.model_type ?? ''} ${d.status ?? ''} ${d.progress_pct != null ? `${d.progress_pct} %` : ''} ${d.message ?? d.error_message ?? ''}`;
  }
}

export function mount(main, ctx) {
  const boxes = TYPES.map((t) => h('input', { type: 'checkbox', value: t, checked: t !== 'metric_updated' }));
  const machine = h('select', { id: 'ev-machine', 'aria-label': 'Machine' }, h('option', { value: '', text: 'All machines' }));
  const pause = h('button', { type: 'button', id: 'pause', text: 'Pause', 'aria-pressed': 'false' });
  const held = h('span', { class: 'small muted', id: 'held' });
  const list = h('ul', { class: 'events-list', id: 'event-log', 'aria-live': 'off' });
  const problem = h('div');
  let names = new Map();
  let paused = false;
  let pending = [];
  main.append(h('h1', { text: 'Live events' }),
    h('div', { class: 'row' }, TYPES.map((t, i) => h('label', { class: 'small' }, boxes[i], t))),
    h('div', { class: 'row' }, machine, pause, held), problem, list);

  const shown = (ev) => boxes.some((b) => b.checked && b.value === ev.type)
    && (!machine.value || !ev.data?.machine_id || ev.data.machine_id === machine.value);

  function item(ev) {
    return h('li', { dataset: { type: ev.type, id: ev.id, machine: ev.data?.machine_id ?? '' }, hidden: !shown(ev) },
      h('div', { class: 'row' }, h('strong', { text: ev.type }), h('span', { class: 'muted small', text: time(ev.timestamp) }),
        h('span', { text: summary(ev, names) })),
      h('code', { text: ev.id }));
  }

  function add(evs) {
    for (const ev of evs) {
      if (list.querySelector(`li[data-id="${CSS.escape(ev.id)}"]`)) continue;
      list.prepend(item(ev));
    }
    while (list.children.length > MAX) list.lastElementChild.remove();
  }

  /** Replaces the list with `evs` but keeps live events newer than all of them. */
  function reset(evs) {
    const newest = evs.length ? idKey(evs.at(-1).id) : '';
    const keep = [...list.children].filter((li) => idKey(li.dataset.id) > newest);
    list.replaceChildren();
    add(evs);
    list.prepend(...keep);
  }

  function refilter() {
    for (const li of list.children) {
      li.hidden = !shown({ type: li.dataset.type, data: { machine_id: li.dataset.machine || undefined } });
    }
  }

  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) { add(pending); pending = []; }
    held.textContent = '';
  });
  for (const b of [...boxes, machine]) b.addEventListener('change', refilter);

  async function load() {
    problem.replaceChildren();
    try {
      names = await ctx.machines();
      if (machine.options.length === 1) machine.append(...[...names.values()].map((m) => h('option', { value: m.id, text: m.name })));
      // The log keeps the durable types across restarts; metric_updated only
      // lives in the recent window.
      const page = await api(`/api/v1/events${qs({ limit: 100, types: TYPES.filter((t) => t !== 'metric_updated').join(',') })}`);
      reset(page.events);
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  load();
  return {
    onEvent(ev) {
      if (paused) {
        pending.push(ev);
        if (pending.length > MAX) pending.shift();
        held.textContent = `${pending.length} new while paused`;
      } else {
        add([ev]);
      }
    },
    onResync: load,
  };
}
