// Models: every version per machine and type with its quality figures
// (R², CV(RMSE), NMBE, ASHRAE Guideline 14 pass/fail for baselines; the
// backtest of kept forecasts), which
// one is active, and a button to activate another.

import { api, uiHref } from 'enms/api.js';
import { h, num, dateTime, errorBox } from 'enms/dom.js';
import { toast } from 'enms/toast.js';

function quality(m) {
  const x = m.metrics ?? {};
  if (m.model_type === 'baseline') {
    return h('span', {},
      `R² ${num(x.r_squared, 3)} · CV(RMSE) ${num(x.cv_rmse_pct)} % · NMBE ${num(x.nmbe_pct, 2)} % · G14 `,
      h('span', { class: x.g14_pass ? 'pass' : 'fail', text: x.g14_pass ? 'pass' : 'fail' }),
      x.variables ? h('div', { class: 'small muted', text: `${x.granularity} on ${x.variables.join(', ') || 'hours only'}` }) : null);
  }
  if (m.model_type === 'forecast') {
    const d = x.day_ahead ?? {};
    return h('span', {}, `${x.method ?? ''} · ${x.horizon_hours ?? '–'} h · day-ahead MAPE ${num(d.mape_pct)} % · 80 % band covered ${num(d.coverage_80_pct, 0)} %`);
  }
  return h('span', {}, `contamination ${num(x.contamination, 2)} · ${x.training_rows ?? '–'} rows · ${x.uses_baseline ? 'on baseline residuals' : 'on raw power'}`);
}

export function mount(main, ctx) {
  const rows = h('tbody', { id: 'model-rows' });
  const problem = h('div');
  let disposed = false;
  main.append(h('h1', { text: 'Models' }), problem,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Machine', 'Type', 'Version', 'Quality', 'Trained', 'State'].map((t) => h('th', { text: t })))),
      rows)));

  async function activate(m) {
    try {
      await api(`/api/v1/models/${m.id}/activate`, { method: 'POST' });
      toast({ kind: 'success', title: `Activated ${m.model_type} v${m.version}` });
      await load();
    } catch (e) {
      toast({ kind: 'danger', title: 'Not activated', message: e.message });
    }
  }

  async function load() {
    problem.replaceChildren();
    try {
      const [names, list] = await Promise.all([ctx.machines(), api('/api/v1/models')]);
      if (disposed) return;
      list.sort((a, b) => (names.get(a.machine_id)?.name ?? '').localeCompare(names.get(b.machine_id)?.name ?? '')
        || a.model_type.localeCompare(b.model_type) || b.version - a.version);
      rows.replaceChildren(...list.map((m) => h('tr', { dataset: { modelId: m.id } },
        h('td', {}, h('a', { href: uiHref(`machines/${m.machine_id}`), text: names.get(m.machine_id)?.name ?? m.machine_id })),
        h('td', { text: m.model_type }), h('td', { class: 'num', text: `v${m.version}` }), h('td', {}, quality(m)),
        h('td', { text: dateTime(m.created_at) }),
        h('td', {}, m.active ? h('span', { class: 'sev ok', text: 'active' }) : h('button', { type: 'button', text: 'Activate', onclick: () => activate(m) })))));
      if (!list.length) rows.append(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'No models yet: train a baseline from a machine page.' })));
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  load();
  return {
    onEvent(ev) { if (ev.type === 'model_updated' || (ev.type === 'training_completed' && ev.data.status === 'completed')) load(); },
    onResync: load,
    unmount() { disposed = true; },
  };
}
