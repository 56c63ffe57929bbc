// Desktop notifications for critical episodes, through the browser's
// Notification API: opt-in with a toggle (remembered in localStorage), and
// shown once per episode however often it is announced (it opens, then
// escalates; another tab of the same session shares what was shown).

import { h } from 'enms/dom.js';
import { toast } from 'enms/toast.js';

const KEY = 'enms.desktopNotifications';
const SHOWN_KEY = 'enms.desktopShown';
const SHOWN_MAX = 200;

function stored() {
  const v = localStorage.getItem(KEY);
  if (v !== null && v !== 'on' && v !== 'off') {
    // Something else wrote the key: ignore it rather than guess.
    localStorage.removeItem(KEY);
    return 'off';
  }
  return v ?? 'off';
}

const supported = () => typeof window.Notification === 'function';

/** Whether critical episodes are shown on the desktop now. */
export function enabled() {
  return stored() === 'on' && supported() && Notification.permission === 'granted';
}

function shown() {
  try {
    const list = JSON.parse(sessionStorage.getItem(SHOWN_KEY) ?? '[]');
    return Array.isArray(list) ? list.filter((x) => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** Shows a desktop notification for a critical `anomaly_detected`, once per
 *  episode. `name` is the machine's name. */
export function notifyCritical(d, name) {
  if (d.severity !== 'critical' || !enabled()) return false;
  const id = d.details?.episode?.id ?? d.anomaly_id;
  if (!id) return false;
  const seen = shown();
  if (seen.includes(id)) return false;
  seen.push(id);
  sessionStorage.setItem(SHOWN_KEY, JSON.stringify(seen.slice(-SHOWN_MAX)));
  const n = new Notification(`Critical: ${d.anomaly_type ?? 'anomaly'} on ${name}`, {
    body: `${d.metric ?? 'value'} ${d.value ?? ''}${d.expected_value != null ? ` (expected ${d.expected_value})` : ''}`,
    tag: id,
  });
  n.onclick = () => { window.focus(); n.close(); };
  return true;
}

/** The opt-in toggle. */
export function desktopToggle() {
  const box = h('input', { type: 'checkbox', id: 'desktop-notify', checked: stored() === 'on' && supported() });
  const label = h('label', { class: 'inline' }, box, ' Desktop notifications for critical episodes');
  if (!supported()) {
    box.disabled = true;
    label.title = 'This browser has no desktop notifications';
    return label;
  }
  box.addEventListener('change', async () => {
    if (!box.checked) {
      localStorage.setItem(KEY, 'off');
      return;
    }
    const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (permission === 'granted') {
      localStorage.setItem(KEY, 'on');
      toast({ kind: 'success', title: 'Desktop notifications on', message: 'Critical episodes will show on your desktop.' });
    } else {
      box.checked = false;
      localStorage.setItem(KEY, 'off');
      toast({ kind: 'warning', title: 'Desktop notifications blocked', message: 'The browser did not allow them for this site.' });
    }
  });
  return label;
}
