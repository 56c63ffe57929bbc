// The connection indicator at the bottom right: Live (green), Connecting or
// Reconnecting with the attempt number (yellow), Offline with a Reconnect
// button (red). The transport shows when it is not the WebSocket.

import { h } from 'enms/dom.js';

const LABELS = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting', offline: 'Offline' };

export function mountStatus(el, rt) {
  const render = () => {
    const { state, transport, attempt } = rt;
    let label = LABELS[state] ?? state;
    if (state === 'reconnecting') label += ` (attempt ${attempt})`;
    if (state === 'live' && transport !== 'websocket') label += ` · ${transport === 'sse' ? 'SSE' : 'polling'}`;
    el.dataset.state = state;
    el.title = state === 'live' ? `Receiving events over ${transport}` : 'Events are not arriving; they will be caught up on reconnect';
    const retry = state === 'offline' || state === 'reconnecting';
    el.replaceChildren(h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'label', text: label }),
      ...(retry ? [h('button', { type: 'button', text: 'Reconnect', onclick: () => rt.reconnectNow() })] : []));
  };
  rt.addEventListener('state', render);
  render();
}
