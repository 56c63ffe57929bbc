// REST access for the dashboard. Every URL starts from the server's base path
// (meta enms-base), so the UI works behind a proxy prefix such as
// /api/analytics. Errors carry the server's {"error": {code, message, field}}.

import { askForToken, getToken, setToken } from 'enms/auth.js';

export const base = document.querySelector('meta[name="enms-base"]')?.content ?? '';

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code ?? `http_${status}`;
    this.field = error?.field;
  }
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const init = { method, signal, headers: {} };
  const token = getToken();
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (res.status === 401) {
    if (token) setToken(null);
    askForToken(data?.error?.message);
  }
  if (!res.ok) throw new ApiError(res.status, data?.error ?? { message: text || res.statusText });
  return data;
}

/** Query string from an object, skipping empty values; arrays repeat the key. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function wsUrl(path) {
  const url = new URL(base + path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export const uiHref = (page = '') => `${base}/ui/${page}`;

/** Machines by id, loaded once per page load and shared by every view. */
let machines = null;
export async function machineMap(reload = false) {
  if (!machines || reload) {
    machines = api('/api/v1/machines').then((list) => new Map(list.map((m) => [m.id, m])));
    machines.catch(() => { machines = null; });
  }
  return machines;
}
