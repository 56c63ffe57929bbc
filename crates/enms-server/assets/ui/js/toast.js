// Toasts: success, info, warning and danger, stacked at the top right, at most
// MAX at once (the oldest goes first), dismissed after a time that grows with
// severity — paused while the pointer is over one — or by their close button.

import { h } from 'enms/dom.js';

const MAX = 5;
const DURATION_MS = { success: 3000, info: 4000, warning: 6000, danger: 8000 };

export function toast({ kind = 'info', title, message = '' }) {
  const box = document.getElementById('toasts');
  if (!box) return null;
  while (box.children.length >= MAX) box.firstElementChild.remove();
  const close = () => el.remove();
  const el = h('div', { class: `toast ${kind}`, role: kind === 'danger' ? 'alert' : 'status', dataset: { kind } },
    h('div', { class: 'body' }, h('strong', { text: title }), message ? h('span', { text: message }) : null),
    h('button', { type: 'button', 'aria-label': 'Dismiss', onclick: close, text: '×' }));
  let timer = setTimeout(close, DURATION_MS[kind] ?? 4000);
  el.addEventListener('mouseenter', () => clearTimeout(timer));
  el.addEventListener('mouseleave', () => { timer = setTimeout(close, 2000); });
  box.append(el);
  return el;
}
