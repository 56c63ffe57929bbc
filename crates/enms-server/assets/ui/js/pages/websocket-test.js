// WebSocket test page: connect to any stream with any parameters, send ping,
// subscribe or any raw message, and watch the raw frames with their latency
// (ping round trip; for events, now minus the event's own timestamp).

import { wsUrl, qs } from 'enms/api.js';
import { h } from 'enms/dom.js';

const STREAMS = ['dashboard', 'anomalies', 'training', 'events', 'custom (types=…)'];

export function mount(main) {
  const stream = h('select', { id: 'ws-stream' }, STREAMS.map((s) => h('option', { value: s, text: s })));
  const types = h('input', { id: 'ws-types', placeholder: 'types for custom, e.g. system_alert,model_updated', size: 40 });
  const machine = h('input', { id: 'ws-machine', placeholder: 'machine_id (optional)', size: 38 });
  const lastId = h('input', { id: 'ws-last-id', placeholder: 'last_event_id (optional)', size: 22 });
  const connectBtn = h('button', { type: 'button', class: 'primary', id: 'ws-connect', text: 'Connect' });
  const pingBtn = h('button', { type: 'button', id: 'ws-ping', text: 'Send ping', disabled: true });
  const message = h('textarea', { id: 'ws-message', rows: 3, cols: 60, 'aria-label': 'Message to send' });
  message.value = '{"type":"subscribe","machine_ids":["c0000000-0000-0000-0000-000000000001"]}';
  const sendBtn = h('button', { type: 'button', id: 'ws-send', text: 'Send message', disabled: true });
  const stats = h('span', { class: 'small muted', id: 'ws-stats' });
  const log = h('div', { class: 'log', id: 'ws-log', role: 'log' });
  main.append(h('h1', { text: 'WebSocket test' }),
    h('div', { class: 'row' }, h('label', {}, 'Stream', stream), types, machine, lastId, connectBtn),
    h('div', { class: 'row' }, pingBtn, message, sendBtn), h('p', {}, stats), log);

  let ws = null;
  let pingAt = 0;
  let frames = 0;

  function line(kind, text) {
    log.prepend(h('div', { class: kind, text: `${new Date().toISOString().slice(11, 23)} ${kind === 'in' ? '←' : kind === 'out' ? '→' : '•'} ${text}` }));
    while (log.children.length > 1000) log.lastElementChild.remove();
  }

  function setConnected(on) {
    connectBtn.textContent = on ? 'Disconnect' : 'Connect';
    pingBtn.disabled = !on;
    sendBtn.disabled = !on;
  }

  function send(text) {
    if (ws?.readyState !== WebSocket.OPEN) return;
    ws.send(text);
    line('out', text);
  }

  connectBtn.addEventListener('click', () => {
    if (ws) { ws.close(1000, 'closed from the test page'); return; }
    const custom = stream.value.startsWith('custom');
    const url = wsUrl(custom ? '/api/v1/ws' : `/api/v1/ws/${stream.value}`)
      + qs({ types: custom ? types.value : '', machine_id: machine.value.trim(), last_event_id: lastId.value.trim() });
    line('sys', `connecting to ${url}`);
    const opened = performance.now();
    ws = new WebSocket(url);
    ws.onopen = () => { line('sys', `open after ${(performance.now() - opened).toFixed(1)} ms`); setConnected(true); };
    ws.onmessage = (m) => {
      frames += 1;
      let extra = '';
      try {
        const msg = JSON.parse(m.data);
        if (msg.type === 'pong' && pingAt) extra = `  [round trip ${(performance.now() - pingAt).toFixed(1)} ms]`;
        else if (msg.id && msg.timestamp) extra = `  [${Math.max(0, Date.now() - Date.parse(msg.timestamp))} ms after publish]`;
        if (msg.id) lastId.value = msg.id;
      } catch { extra = '  [not JSON]'; }
      stats.textContent = `${frames} frames received`;
      line('in', m.data + extra);
    };
    ws.onclose = (e) => { line('sys', `closed: code ${e.code}${e.reason ? ` "${e.reason}"` : ''}`); ws = null; setConnected(false); };
    ws.onerror = () => line('sys', 'connection error (see the close code)');
  });
  pingBtn.addEventListener('click', () => { pingAt = performance.now(); send('{"type":"ping"}'); });
  sendBtn.addEventListener('click', () => send(message.value));
  return { unmount() { ws?.close(1000, 'left the page'); } };
}
