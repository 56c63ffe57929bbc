// Toasts: success, info, warning and danger, stacked up from the bottom right
// (clear of the header and its badges at every width), at most MAX at once
// (the oldest goes first), dismissed after a time that grows with severity —
// paused while the pointer is over one — or by their close button.

import { h } from 'enms/dom.js';

const MAX = 5;
const DURATION_MS = { success: 3000, info: 4000, warning: 6000, danger: 8000 };

// The header wraps on narrow screens; the toast column stops below it.
function trackHeader() {
  const header = document.querySelector('header.top');
  if (!header || trackHeader.done) return;
  trackHeader.done = true;
  const set = () => document.documentElement.style.setProperty('--header-h', `${header.getBoundingClientRect().bottom}px`);
  new ResizeObserver(set).observe(header);
  set();
}

export function toast({ kind = 'info', title, message = '' }) {
  const box = document.getElementById('toasts');
  if (!box) return null;
  trackHeader();
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
