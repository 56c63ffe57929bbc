// Incidents: the list filtered by state, severity and machine, kept current
// by incident_* events; the chosen incident's details and timeline, live,
// with acknowledge, comment, assign and resolve (docs/incidents.md), and an
// explanation of its strongest anomaly (docs/explanations.md).

import { api, qs, uiHref } from 'enms/api.js';
import { h, dateTime, sev, errorBox } from 'enms/dom.js';
import { toast } from 'enms/toast.js';

export function mount(main, ctx, chosenId) {
  const f = {
    state: h('select', { id: 'f-state' }, [['open,acknowledged', 'Unresolved'], ['open', 'Open'], ['acknowledged', 'Acknowledged'], ['resolved', 'Resolved'], ['', 'All']]
      .map(([v, t]) => h('option', { value: v, text: t }))),
    severity: h('select', { id: 'f-inc-severity' }, ['', 'warning', 'critical'].map((s) => h('option', { value: s, text: s || 'Any severity' }))),
    machine: h('select', { id: 'f-inc-machine' }, h('option', { value: '', text: 'All machines' })),
  };
  const rows = h('tbody', { id: 'incident-rows' });
  const detail = h('section', { id: 'incident-detail', class: 'card', hidden: true });
  const problem = h('div');
  let names = new Map();
  let selected = chosenId ?? null;
  // The incident on screen and its version: an answer older than what is
  // shown (requests racing each other's events) is not drawn.
  let shown = { id: null, version: -1 };
  let disposed = false;
  main.append(h('h1', { text: 'Incidents' }),
    h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('label', {}, 'State', f.state), h('label', {}, 'Severity', f.severity), h('label', {}, 'Machine', f.machine)),
    problem,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Opened', 'Machine', 'Severity', 'Title', 'State', 'Assignee', 'Episodes'].map((t) => h('th', { text: t })))),
      rows)),
    detail);
  for (const s of Object.values(f)) s.addEventListener('change', () => load());

  const nameOf = (id) => names.get(id)?.name ?? id;

  function row(i) {
    return h('tr', { dataset: { incidentId: i.id, state: i.state }, class: i.id === selected ? 'selected' : '' },
      h('td', { text: dateTime(i.opened_at) }),
      h('td', {}, h('a', { href: uiHref(`machines/${i.machine_id}`), text: nameOf(i.machine_id) })),
      h('td', {}, sev(i.severity)),
      h('td', {}, h('a', { href: uiHref(`incidents/${i.id}`), text: i.title })),
      h('td', { class: 'state', text: i.state }),
      h('td', { class: 'assignee', text: i.assignee ?? '–' }),
      h('td', { class: 'num', text: String(i.episode_count) }));
  }

  async function act(path, body, done) {
    try {
      const view = await api(`/api/v1/incidents/${selected}/${path}`, { method: 'POST', body });
      if (path === 'comments') document.getElementById('incident-comment').value = '';
      show(view);
      toast({ kind: 'success', title: done });
    } catch (e) {
      toast({ kind: 'danger', title: 'Not done', message: e.message });
    }
  }

  async function explain(box) {
    box.replaceChildren(h('p', { class: 'muted', text: 'Analysing…' }));
    try {
      const a = await api('/api/ai/analyze', { method: 'POST', body: { incident_id: selected } });
      box.replaceChildren(h('p', { id: 'incident-analysis', text: a.summary }),
        h('ol', {}, a.checks.map((c) => h('li', { text: c }))));
    } catch (e) {
      box.replaceChildren(h('p', { class: 'muted small', text: e.status === 404
        ? 'No stored anomaly to explain: this incident came from published events.'
        : e.message }));
    }
  }

  function show(v) {
    if (v.id === shown.id && v.version < shown.version) return;
    // What the user is typing survives a redraw of the same incident.
    const same = v.id === shown.id;
    const typed = same ? document.getElementById('incident-comment')?.value ?? '' : '';
    const assigning = same ? document.getElementById('incident-assignee')?.value : undefined;
    const analysis = same ? document.getElementById('incident-analysis-box') : h('div', { id: 'incident-analysis-box' });
    shown = { id: v.id, version: v.version };
    detail.hidden = false;
    const resolved = v.state === 'resolved';
    const comment = h('input', { id: 'incident-comment', type: 'text', placeholder: 'Comment', 'aria-label': 'Comment', maxlength: 2000, value: typed });
    const assignee = h('input', { id: 'incident-assignee', type: 'text', placeholder: 'Assignee', 'aria-label': 'Assignee', value: assigning ?? v.assignee ?? '', maxlength: 100 });
    const timeline = h('ol', { id: 'incident-timeline', class: 'timeline' }, v.timeline.map((e) => h('li', { dataset: { kind: e.kind } },
      h('span', { class: 'small muted', text: `${dateTime(e.at)} · ${e.actor} · ` }), h('strong', { text: e.kind.replace('_', ' ') }),
      e.text ? h('span', { text: ` — ${e.text}` }) : null)));
    detail.replaceChildren(
      h('h2', { id: 'incident-title', text: `${v.title}` }),
      h('p', {}, sev(v.severity), ' ', h('span', { id: 'incident-state', text: v.state }),
        h('span', { class: 'muted small', text: ` · ${v.episode_count} episode(s) · opened ${dateTime(v.opened_at)}${v.assignee ? ` · assigned to ${v.assignee}` : ''}` })),
      h('div', { class: 'row' },
        h('button', { type: 'button', id: 'incident-ack', text: 'Acknowledge', disabled: v.state !== 'open', onclick: () => act('acknowledge', {}, 'Incident acknowledged') }),
        h('button', { type: 'button', id: 'incident-resolve', class: 'primary', text: 'Resolve', disabled: resolved, onclick: () => act('resolve', {}, 'Incident resolved') }),
        h('button', { type: 'button', id: 'incident-explain', text: 'Explain', onclick: () => explain(analysis) })),
      analysis,
      h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); if (comment.value.trim()) act('comments', { text: comment.value }, 'Comment added'); } },
        comment, h('button', { type: 'submit', id: 'incident-comment-send', text: 'Comment' })),
      h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); act('assign', { assignee: assignee.value.trim() || null }, 'Assignment saved'); } },
        assignee, h('button', { type: 'submit', id: 'incident-assign', text: 'Assign', disabled: resolved })),
      h('h3', { text: 'Timeline' }), timeline);
  }

  async function select(id) {
    selected = id;
    for (const r of rows.children) r.classList.toggle('selected', r.dataset.incidentId === id);
    if (!id) {
      detail.hidden = true;
      return;
    }
    show(await api(`/api/v1/incidents/${id}`));
  }

  async function load() {
    problem.replaceChildren();
    try {
      names = await ctx.machines();
      if (f.machine.options.length === 1) {
        f.machine.append(...[...names.values()].map((m) => h('option', { value: m.id, text: m.name })));
      }
      const list = await api(`/api/v1/incidents${qs({ state: f.state.value, severity: f.severity.value, machine_id: f.machine.value, limit: 200 })}`);
      if (disposed) return;
      rows.replaceChildren(...list.map(row));
      if (!list.length) rows.append(h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'No incident matches.' })));
      if (selected) await select(selected);
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  function onEvent(ev) {
    if (!ev.type?.startsWith('incident_')) return;
    // The list and the open incident follow every change, whoever made it.
    load();
  }

  load();
  return { onEvent, onResync: load, unmount() { disposed = true; } };
}
