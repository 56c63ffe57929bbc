// Small helpers for building DOM and formatting numbers and times. Text is
// always set as text (never innerHTML), so data from events cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function num(v, digits = 1) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  return Number(v).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function money(v, currency) {
  if (v === undefined || v === null) return '–';
  try {
    return Number(v).toLocaleString(undefined, { style: 'currency', currency: currency || 'EUR' });
  } catch {
    return `${num(v, 2)} ${currency ?? ''}`;
  }
}

export const time = (ts) => (ts ? new Date(ts).toLocaleTimeString() : '–');
export const dateTime = (ts) => (ts ? new Date(ts).toLocaleString() : '–');

export function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d;
}

export const sev = (s) => h('span', { class: `sev ${s}`, text: s });

export function progressBar(pct, status) {
  const bar = h('div', { class: `progress ${status ?? ''}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('div'));
  setProgress(bar, pct, status);
  return bar;
}

export function setProgress(bar, pct, status) {
  const v = Math.max(0, Math.min(100, Number(pct) || 0));
  bar.className = `progress ${status ?? ''}`;
  bar.setAttribute('aria-valuenow', String(Math.round(v)));
  bar.firstChild.style.width = `${v}%`;
}

export function errorBox(err) {
  return h('p', { class: 'error-box', role: 'alert', text: `${err.message ?? err}${err.code ? ` (${err.code})` : ''}` });
}
