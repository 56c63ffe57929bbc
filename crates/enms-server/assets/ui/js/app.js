// The dashboard shell: client-side routing under <base>/ui/, one live
// connection shared by every view, and the reactions every page has in
// common (toasts, the critical-anomaly mark in the title).
//
// A view module exports `mount(main, ctx, ...routeParams)` and returns
// { onEvent(envelope), onResync(), unmount() }, each optional.

import { api, base, machineMap } from 'enms/api.js';
import { askForToken, getToken, showCaller, showOpenMode } from 'enms/auth.js';
import { Realtime } from 'enms/realtime.js';
import { mountStatus } from 'enms/status.js';
import { toast } from 'enms/toast.js';
import { errorBox, num } from 'enms/dom.js';
import { notifyCritical } from 'enms/desktop.js';
import * as overview from 'enms/pages/overview.js';
import * as machine from 'enms/pages/machine.js';
import * as hosts from 'enms/pages/hosts.js';
import * as anomalies from 'enms/pages/anomalies.js';
import * as incidents from 'enms/pages/incidents.js';
import * as models from 'enms/pages/models.js';
import * as events from 'enms/pages/events.js';
import * as notifications from 'enms/pages/notifications.js';
import * as users from 'enms/pages/users.js';
import * as wstest from 'enms/pages/websocket-test.js';

const ROUTES = [
  [/^$/, 'overview', overview],
  [/^machines\/([^/]+)$/, 'overview', machine],
  [/^hosts$/, 'hosts', hosts],
  [/^hosts\/([^/]+)$/, 'hosts', hosts],
  [/^anomalies$/, 'anomalies', anomalies],
  [/^incidents$/, 'incidents', incidents],
  [/^incidents\/([^/]+)$/, 'incidents', incidents],
  [/^models$/, 'models', models],
  [/^events$/, 'events', events],
  [/^notifications$/, 'notifications', notifications],
  [/^users$/, 'users', users],
  [/^websocket-test$/, 'websocket-test', wstest],
];
const TITLE = 'enms';

const rt = new Realtime({ stream: 'dashboard' });
const ctx = { rt, navigate, machines: machineMap };
window.enms = { rt }; // for the console and the browser tests
let view = null;
let unseenCritical = 0;

function routePath() {
  let p = location.pathname;
  if (base && p.startsWith(base)) p = p.slice(base.length);
  return p.replace(/^\/(ui(\/|$))?/, '').replace(/\/$/, '');
}

function render() {
  view?.unmount?.();
  view = null;
  const main = document.getElementById('main');
  main.replaceChildren();
  const path = routePath();
  const route = ROUTES.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll('nav a')) {
    a.toggleAttribute('aria-current', a.dataset.page === route?.[1]);
    if (a.dataset.page === route?.[1]) a.setAttribute('aria-current', 'page');
  }
  if (!route) {
    main.append(errorBox({ message: `No page at ${location.pathname}` }));
    return;
  }
  if (route[1] === 'anomalies') clearCritical();
  try {
    view = route[2].mount(main, ctx, ...path.match(route[0]).slice(1).map(decodeURIComponent)) ?? null;
  } catch (e) {
    console.error(e);
    main.append(errorBox(e));
  }
}

export function navigate(href) {
  history.pushState(null, '', href);
  render();
  document.getElementById('main').focus({ preventScroll: true });
  scrollTo(0, 0);
}

document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[href]');
  if (!a || a.target || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(`${base}/ui`)) return;
  if (url.pathname.startsWith(`${base}/ui/assets/`)) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
addEventListener('popstate', render);

function markCritical() {
  unseenCritical += 1;
  document.title = `(${unseenCritical}) ⚠ critical anomaly – ${TITLE}`;
}

function clearCritical() {
  unseenCritical = 0;
  document.title = TITLE;
}

async function machineName(id) {
  if (!id) return 'system';
  try {
    return (await machineMap()).get(id)?.name ?? id;
  } catch {
    return id;
  }
}

async function notify(ev) {
  const d = ev.data ?? {};
  switch (ev.type) {
    case 'anomaly_detected': {
      if (d.severity !== 'warning' && d.severity !== 'critical') return;
      const name = d.machine_name ?? await machineName(d.machine_id);
      const expected = d.expected_value != null ? ` (expected ${num(d.expected_value)})` : '';
      // One toast per episode: the server announces an episode when it
      // opens and when it escalates, not every flagged reading.
      toast({
        kind: d.severity === 'critical' ? 'danger' : 'warning',
        title: `${d.details?.escalated ? 'Escalated' : 'Anomaly'} on ${name}: ${d.anomaly_type}`,
        message: `${d.metric ?? 'value'} ${num(d.value)}${expected}`,
      });
      if (d.severity === 'critical') {
        markCritical();
        notifyCritical(d, name);
      }
      return;
    }
    case 'training_started':
      toast({ kind: 'info', title: `Training started: ${d.model_type ?? 'model'}`, message: await machineName(d.machine_id) });
      return;
    case 'training_completed':
      if (d.status === 'completed') {
        const r2 = d.metrics?.r_squared != null ? ` – R² ${num(d.metrics.r_squared, 3)}` : '';
        toast({ kind: 'success', title: `Training complete: ${d.model_type ?? 'model'}`, message: `${await machineName(d.machine_id)}${r2}` });
      } else {
        toast({ kind: 'danger', title: `Training ${d.status}`, message: d.error_message ?? d.message ?? '' });
      }
      return;
    case 'model_updated':
      toast({ kind: 'info', title: `Model updated: ${d.model_type ?? ''} v${d.version ?? '?'}`, message: await machineName(d.machine_id) });
      return;
    case 'incident_opened':
      toast({
        kind: d.severity === 'critical' ? 'danger' : 'warning',
        title: `Incident opened: ${d.title ?? d.anomaly_type}`,
        message: 'See Incidents to acknowledge or assign it.',
      });
      return;
    case 'system_alert': {
      const kind = { critical: 'danger', warning: 'warning', normal: 'success' }[d.severity] ?? 'info';
      toast({ kind, title: `System alert: ${d.alert_type}`, message: d.message });
      return;
    }
    default:
  }
}

let everConnected = false;
rt.addEventListener('event', (e) => {
  notify(e.detail).catch(console.warn);
  view?.onEvent?.(e.detail);
});
rt.addEventListener('resync', () => view?.onResync?.());
rt.addEventListener('connected', (e) => {
  if (!everConnected) toast({ kind: 'success', title: 'Real-time updates active' });
  else if (e.detail.resumed) toast({ kind: 'info', title: 'Reconnected', message: e.detail.recovered ? 'missed events recovered' : 'reloading data' });
  everConnected = true;
});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && rt.state !== 'live') rt.reconnectNow();
});

mountStatus(document.getElementById('status'), rt);
// Ask to sign in before connecting when the server needs it; say so when
// it runs open. A failing health check just starts (the status shows it).
api('/api/v1/health').catch((e) => e).then((health) => {
  const header = document.querySelector('header.top');
  if (health?.auth?.required === false) showOpenMode(header);
  if (health?.auth?.required && !getToken()) {
    askForToken('This server needs you to sign in to show its data.');
    return;
  }
  if (getToken()) api('/api/auth/me').then((me) => showCaller(header, me)).catch(() => {});
  rt.start();
  render();
});
