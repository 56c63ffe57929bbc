// The live connection behind the dashboard: one event feed per tab with a
// small state machine (connecting → live → reconnecting → offline) that the
// status indicator shows.
//
// - Transport: WebSocket first. When the WebSocket fails twice while the REST
//   API answers (a proxy that drops upgrades), it falls back to server-sent
//   events, and from there to polling /api/v1/events?since=. While on a
//   fallback it probes the WebSocket every minute and moves back when it works.
// - Reconnect: exponential backoff with full jitter, 1 s doubling up to a 30 s
//   cap (random in [0, cap]) so a restarted server is not hit by every screen
//   at the same instant. After `offlineAfter` failed attempts the state is
//   offline; it keeps retrying at the cap, and `reconnectNow()` retries at once.
// - Resume: every connection asks for the events after the last id it saw,
//   so events published while it was away arrive in order; duplicates are
//   dropped by id. When the server answers recovered:false the gap could not be
//   filled and a `resync` event tells views to reload their state over REST.
// - Keep-alive: a ping every 20 s; a connection silent for 50 s is dropped
//   and reconnected (the server also pings at the protocol level).
//
// Events: `state` {state, transport, attempt}, `event` (each envelope),
// `connected` {recovered, resumed}, `resync`, `pong` {rtt}.

import { api, qs, wsUrl, base } from 'enms/api.js';
import { askForToken, getToken, setToken } from 'enms/auth.js';

const TYPES = ['anomaly_detected', 'anomaly_updated', 'metric_updated', 'training_started', 'training_progress',
  'training_completed', 'model_updated', 'system_alert'];
const PING_MS = 20_000;
const SILENCE_MS = 50_000;
const POLL_MS = 2_000;
const PROBE_MS = 60_000;
const BASE_DELAY_MS = 1_000;
const CAP_MS = 30_000;

/** Ids are `<ms>-<seq>`; this key orders them as strings. */
export const idKey = (id) => id.split('-').map((p) => p.padStart(20, '0')).join('-');

export class Realtime extends EventTarget {
  constructor({ stream = 'dashboard', offlineAfter = 6 } = {}) {
    super();
    this.stream = stream;
    this.offlineAfter = offlineAfter;
    this.clientId = `ui-${Math.random().toString(36).slice(2, 10)}`;
    this.state = 'connecting';
    this.transport = 'websocket';
    this.attempt = 0;
    this.lastEventId = null;
    this.seen = new Set();
    this.wsFailures = 0;
    this.sseFailures = 0;
    this.timers = new Set();
    this.conn = null;
    this.stopped = true;
    addEventListener('online', () => this.reconnectNow());
    addEventListener('offline', () => this.#setState('offline'));
  }

  start() {
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    this.#teardown();
  }

  /** Drops any pending backoff and connects at once (the Reconnect button). */
  reconnectNow() {
    if (this.stopped) return;
    this.attempt = 0;
    this.#teardown();
    this.#setState('connecting');
    this.#connect();
  }

  /** Sends a client message when on a WebSocket; false otherwise. */
  send(msg) {
    if (this.conn?.kind !== 'websocket' || this.conn.ws.readyState !== WebSocket.OPEN) return false;
    this.conn.ws.send(JSON.stringify(msg));
    return true;
  }

  #setState(state) {
    if (this.state === state && state !== 'reconnecting') return;
    this.state = state;
    this.#emit('state', { state, transport: this.transport, attempt: this.attempt });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #later(fn, ms) {
    const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
    return t;
  }

  #teardown() {
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    this.timers.clear();
    const conn = this.conn;
    this.conn = null;
    if (!conn) return;
    conn.dead = true;
    if (conn.kind === 'websocket') conn.ws.close(1000, 'client closing');
    if (conn.kind === 'sse') conn.es.close();
    conn.abort?.abort();
  }

  #connect() {
    if (this.transport === 'websocket') this.#connectWs();
    else if (this.transport === 'sse') this.#connectSse();
    else this.#connectPolling();
  }

  #resumeParams() {
    return { client_id: this.clientId, last_event_id: this.lastEventId ?? undefined };
  }

  #connectWs(probe = false) {
    const token = getToken();
    const ws = new WebSocket(wsUrl(`/api/v1/ws/${this.stream}`) + qs(this.#resumeParams()),
      token ? ['enms', `bearer.${token}`] : undefined);
    const conn = { kind: 'websocket', ws, opened: false, lastFrame: Date.now() };
    if (!probe) this.conn = conn;
    ws.onmessage = (m) => {
      conn.lastFrame = Date.now();
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      // Open means the server's greeting arrived: a proxy that accepts the
      // upgrade and then drops it counts as a failed attempt.
      if (msg.type === 'connection') conn.opened = true;
      if (probe && msg.type === 'connection' && !this.stopped) {
        // The WebSocket works again: adopt it and drop the fallback.
        probe = false;
        this.#teardown();
        this.transport = 'websocket';
        this.wsFailures = 0;
        this.conn = conn;
        this.#keepAlive(conn);
      }
      if (!probe && !conn.dead) this.#onMessage(msg);
    };
    ws.onopen = () => {
      if (!probe) this.#keepAlive(conn);
    };
    ws.onclose = (e) => {
      if (probe || conn.dead) return;
      conn.dead = true;
      if (!conn.opened) this.wsFailures += 1;
      this.#down(e.code);
    };
    if (probe) this.#later(() => { if (probe) ws.close(); }, 10_000);
  }

  #keepAlive(conn) {
    const t = setInterval(() => {
      if (conn.dead) return clearInterval(t);
      if (Date.now() - conn.lastFrame > SILENCE_MS) {
        conn.ws.close(4000, 'no answer to pings');
        return;
      }
      this.pingSent = performance.now();
      conn.ws.send(JSON.stringify({ type: 'ping' }));
    }, PING_MS);
    this.timers.add(t);
  }

  #connectSse() {
    const es = new EventSource(`${base}/api/v1/events/stream${qs({ ...this.#resumeParams(), token: getToken() ?? undefined })}`);
    const conn = { kind: 'sse', es, opened: false };
    this.conn = conn;
    const onFrame = (m) => {
      if (conn.dead) return;
      try { this.#onMessage(JSON.parse(m.data)); } catch { /* a malformed frame is skipped */ }
    };
    es.addEventListener('connection', (m) => { conn.opened = true; onFrame(m); });
    for (const t of TYPES) es.addEventListener(t, onFrame);
    // EventSource would reconnect by itself, but without our backoff and
    // resume id; close it and go through the same path as the WebSocket.
    const down = () => {
      if (conn.dead) return;
      conn.dead = true;
      es.close();
      if (!conn.opened) this.sseFailures += 1;
      this.#down(0);
    };
    es.onerror = down;
    es.addEventListener('error', (m) => {
      if (!m.data) return;
      let code = null;
      try { code = JSON.parse(m.data).code; } catch { /* not ours */ }
      if (code === 'credential_ended') {
        conn.dead = true;
        es.close();
        this.#credentialEnded();
        return;
      }
      down();
    });
    this.#probeLater();
  }

  async #connectPolling() {
    const conn = { kind: 'polling', abort: new AbortController(), opened: false };
    this.conn = conn;
    try {
      if (!this.lastEventId) {
        const latest = await api('/api/v1/events?limit=1', { signal: conn.abort.signal });
        this.lastEventId = latest.last_id ?? null;
      }
      while (!conn.dead) {
        const page = await api(`/api/v1/events${qs({ since: this.lastEventId ?? undefined, limit: 1000 })}`,
          { signal: conn.abort.signal });
        if (!conn.opened) {
          conn.opened = true;
          this.#probeLater();
          this.#onMessage({ type: 'connection', recovered: page.complete, transport: 'polling' });
        } else if (!page.complete) {
          this.#emit('resync', {});
        }
        for (const ev of page.events) this.#onMessage(ev);
        if (page.last_id && !this.lastEventId) this.lastEventId = page.last_id;
        await new Promise((r) => this.#later(r, POLL_MS));
      }
    } catch {
      if (!conn.dead) {
        conn.dead = true;
        this.#down(0);
      }
    }
  }

  #probeLater() {
    this.#later(() => {
      if (this.transport !== 'websocket' && this.state === 'live') this.#connectWs(true);
      this.#probeLater();
    }, PROBE_MS);
  }

  #onMessage(msg) {
    switch (msg.type) {
      case 'connection': {
        const resumed = Boolean(this.lastEventId);
        // A first connection starts from the server's newest id: everything
        // after it arrives live, so that is where a reconnect resumes — even
        // when no event came before the connection dropped.
        if (!resumed && msg.last_event_id) this.lastEventId = msg.last_event_id;
        this.attempt = 0;
        this.wsFailures = 0;
        this.sseFailures = 0;
        this.#setState('live');
        this.#emit('connected', { recovered: msg.recovered, resumed, clientId: msg.client_id });
        if (resumed && msg.recovered === false) this.#emit('resync', {});
        return;
      }
      case 'pong':
        this.#emit('pong', { rtt: this.pingSent ? performance.now() - this.pingSent : null });
        return;
      case 'error':
        console.warn('enms: server refused a message', msg.code, msg.message);
        return;
      case 'subscribed':
      case 'unsubscribed':
        return;
      default:
        if (!msg.id || this.seen.has(msg.id)) return;
        this.seen.add(msg.id);
        if (this.seen.size > 2000) this.seen.delete(this.seen.values().next().value);
        if (!this.lastEventId || idKey(msg.id) > idKey(this.lastEventId)) this.lastEventId = msg.id;
        this.#emit('event', msg);
    }
  }

  /** The session or token of the stream ended: sign in again, no retry. */
  #credentialEnded() {
    this.stop();
    setToken(null);
    askForToken('Your session ended (signed out, expired or revoked). Sign in again.');
  }

  async #down(code) {
    if (this.stopped) return;
    if (code === 4401) {
      this.#credentialEnded();
      return;
    }
    this.#teardown();
    this.attempt += 1;
    this.#setState(this.attempt > this.offlineAfter || navigator.onLine === false ? 'offline' : 'reconnecting');
    if (this.transport !== 'polling' && (this.wsFailures >= 2 || this.sseFailures >= 2) && await this.#apiUp()) {
      // The server answers plain HTTP but not this transport: step down.
      this.transport = this.transport === 'websocket' ? 'sse' : 'polling';
      this.wsFailures = 0;
      this.sseFailures = 0;
      this.attempt = 0;
    }
    // A draining server (1001) is going away on purpose: reconnect soon,
    // spread over a second, to another instance behind the proxy.
    const cap = code === 1001 ? BASE_DELAY_MS : Math.min(CAP_MS, BASE_DELAY_MS * 2 ** (this.attempt - 1));
    this.nextRetryAt = Date.now() + Math.random() * cap;
    this.#later(() => this.#connect(), this.nextRetryAt - Date.now());
  }

  async #apiUp() {
    try {
      await api('/api/v1/health');
      return true;
    } catch {
      return false;
    }
  }
}
