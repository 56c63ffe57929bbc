// Notifications: the configured channels (a Test button each) and the
// delivery log with every attempt, refreshed while the page is open (the
// outbox changes without events: retries, deliveries). A server without
// [notify] says so, without calling the routes that would answer 404.

import { api, qs } from 'enms/api.js';
import { h, dateTime, errorBox } from 'enms/dom.js';
import { toast } from 'enms/toast.js';

const REFRESH_MS = 2000;
const STATUS_CLASS = { delivered: 'ok', pending: 'warning', failed: 'critical' };

function attempts(n) {
  const log = n.attempt_log ?? [];
  const last = log[log.length - 1];
  const detail = log.map((a) => `#${a.attempt} ${dateTime(a.at)}: ${a.ok ? 'ok' : 'failed'}${a.status_code ? ` ${a.status_code}` : ''}${a.error ? ` – ${a.error}` : ''} (${a.duration_ms} ms)`).join('\n');
  return h('span', { title: detail || 'not tried yet' }, `${n.attempts}`, last && !last.ok && last.error ? h('div', { class: 'small muted', text: last.error }) : null);
}

export function mount(main) {
  const problem = h('div');
  const channelRows = h('tbody', { id: 'channel-rows' });
  const logRows = h('tbody', { id: 'notification-rows' });
  const filter = h('select', { id: 'notification-status', 'aria-label': 'Status' },
    ['', 'pending', 'delivered', 'failed'].map((s) => h('option', { value: s, text: s || 'every status' })));
  let disposed = false;
  let enabled = false; // [notify] configured: only then are its routes called
  let timer = null;

  main.append(h('h1', { text: 'Notifications' }), problem);

  async function test(name) {
    try {
      await api('/api/v1/notifications/test', { method: 'POST', body: { channel: name } });
      toast({ kind: 'info', title: `Test sent through ${name}`, message: 'the log below shows how it went' });
      await loadLog();
    } catch (e) {
      toast({ kind: 'danger', title: 'Test not sent', message: e.message });
    }
  }

  async function loadLog() {
    const list = await api(`/api/v1/notifications${qs({ status: filter.value, limit: 100 })}`);
    if (disposed) return;
    logRows.replaceChildren(...list.map((n) => h('tr', { dataset: { notificationId: n.id, status: n.status, kind: n.kind } },
      h('td', { text: dateTime(n.created_at) }),
      h('td', { text: n.channel }),
      h('td', { text: n.kind }),
      h('td', { text: n.title }),
      h('td', {}, h('span', { class: `sev ${STATUS_CLASS[n.status] ?? ''}`, text: n.status })),
      h('td', { class: 'num' }, attempts(n)))));
    if (!list.length) logRows.append(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'Nothing sent yet.' })));
  }

  async function load() {
    if (!enabled || disposed) return;
    try {
      await loadLog();
      problem.replaceChildren();
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }

  (async () => {
    try {
      const health = await api('/api/v1/health');
      if (disposed) return;
      if (!health.notify) {
        main.append(h('p', { id: 'notify-off', class: 'muted', text: 'Notifications are not configured on this server: add [notify] channels and rules to its config file (docs/notifications.md).' }));
        return;
      }
      enabled = true;
      const channels = await api('/api/v1/notifications/channels');
      if (disposed) return;
      main.append(
        h('h2', { text: 'Channels' }),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, ['Channel', 'Kind', 'Target', 'Signed', ''].map((t) => h('th', { text: t })))),
          channelRows)),
        h('h2', { text: 'Delivery log' }),
        h('label', {}, 'Show ', filter),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, ['Stored', 'Channel', 'Kind', 'Title', 'Status', 'Attempts'].map((t) => h('th', { text: t })))),
          logRows)));
      channelRows.replaceChildren(...channels.map((c) => h('tr', { dataset: { channel: c.name } },
        h('td', { text: c.name }), h('td', { text: c.kind }), h('td', { text: c.target }),
        h('td', { text: c.signed ? 'HMAC' : '–' }),
        h('td', {}, h('button', { type: 'button', text: 'Send test', onclick: () => test(c.name) })))));
      if (!channels.length) channelRows.append(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No channels configured.' })));
      filter.addEventListener('change', load);
      await load();
      timer = setInterval(load, REFRESH_MS);
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  })();

  return {
    onEvent(ev) { if (ev.type === 'system_alert' || ev.type === 'anomaly_detected' || ev.type === 'anomaly_updated') load(); },
    onResync: load,
    unmount() { disposed = true; clearInterval(timer); },
  };
}
