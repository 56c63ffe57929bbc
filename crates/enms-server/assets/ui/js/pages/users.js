// Users (admins): the people who sign in — create one, change a role, set
// a password, disable or enable — through /api/v1/users (docs/sign-in.md).
// A new password, a lower role or disabling ends the user's sessions, and
// the server closes their live streams. Others see why they cannot.

import { api } from 'enms/api.js';
import { h, dateTime, errorBox } from 'enms/dom.js';
import { toast } from 'enms/toast.js';

const ROLES = ['viewer', 'operator', 'admin'];

function status(u) {
  if (u.disabled_at) return h('span', { class: 'sev warning', text: 'disabled' });
  if (u.locked_until && Date.parse(u.locked_until) > Date.now()) {
    return h('span', { class: 'sev critical', text: `locked until ${dateTime(u.locked_until)}` });
  }
  return h('span', { class: 'sev ok', text: 'active' });
}

export function mount(main) {
  const rows = h('tbody', { id: 'user-rows' });
  const problem = h('div');
  const form = {
    name: h('input', { name: 'name', required: true, autocomplete: 'off', maxlength: 64, pattern: '[A-Za-z0-9._@\\-]+' }),
    role: h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r, text: r }))),
    password: h('input', { name: 'password', type: 'password', required: true, minlength: 8, maxlength: 256, autocomplete: 'new-password' }),
  };
  const formError = h('p', { class: 'error', role: 'alert', hidden: true });
  let disposed = false;
  main.append(h('h1', { text: 'Users' }), problem,
    h('form', { class: 'row', id: 'new-user', onsubmit: (e) => { e.preventDefault(); create(); } },
      h('label', {}, 'Name', form.name), h('label', {}, 'Role', form.role), h('label', {}, 'Password', form.password),
      h('button', { type: 'submit', class: 'primary', text: 'Create user' })),
    formError,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Name', 'Role', 'Last sign-in', 'Status', ''].map((t) => h('th', { text: t })))),
      rows)));

  async function change(u, body, done) {
    try {
      await api(`/api/v1/users/${u.id}`, { method: 'PATCH', body });
      toast({ kind: 'success', title: done });
      await load();
    } catch (e) {
      toast({ kind: 'danger', title: `${u.name} not changed`, message: e.message });
      await load();
    }
  }

  async function create() {
    formError.hidden = true;
    try {
      const u = await api('/api/v1/users', { method: 'POST',
        body: { name: form.name.value.trim(), role: form.role.value, password: form.password.value } });
      toast({ kind: 'success', title: `Created ${u.role} ${u.name}` });
      form.name.value = '';
      form.password.value = '';
      await load();
    } catch (e) {
      formError.textContent = e.message;
      formError.hidden = false;
    }
  }

  function row(u) {
    const role = h('select', { 'aria-label': `Role of ${u.name}`, onchange: () => change(u, { role: role.value }, `${u.name} is now ${role.value}`) },
      ROLES.map((r) => h('option', { value: r, text: r, selected: r === u.role })));
    const password = h('input', { type: 'password', placeholder: 'new password', minlength: 8, maxlength: 256,
      autocomplete: 'new-password', 'aria-label': `New password for ${u.name}` });
    const setPassword = h('form', { class: 'row set-password', onsubmit: (e) => {
      e.preventDefault();
      change(u, { password: password.value }, `New password for ${u.name}; their sessions ended`);
    } }, password, h('button', { type: 'submit', text: 'Set password' }));
    const toggle = u.disabled_at
      ? h('button', { type: 'button', text: 'Enable', onclick: () => change(u, { disabled: false }, `${u.name} enabled`) })
      : h('button', { type: 'button', text: 'Disable', onclick: () => change(u, { disabled: true }, `${u.name} disabled; their sessions ended`) });
    return h('tr', { dataset: { userId: u.id, name: u.name } },
      h('td', { text: u.name }), h('td', {}, role),
      h('td', { text: u.last_login_at ? dateTime(u.last_login_at) : 'never' }),
      h('td', {}, status(u)), h('td', {}, h('div', { class: 'row' }, setPassword, toggle)));
  }

  async function load() {
    problem.replaceChildren();
    try {
      const list = await api('/api/v1/users');
      if (disposed) return;
      rows.replaceChildren(...list.map(row));
      if (!list.length) rows.append(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No users yet: create the first one above, or with `enms user create`.' })));
    } catch (e) {
      if (e.code === 'forbidden') {
        problem.replaceChildren(h('p', { class: 'muted', id: 'users-forbidden', text: 'Managing users needs the admin role.' }));
        for (const el of main.querySelectorAll('#new-user, .table-wrap')) el.hidden = true;
        return;
      }
      problem.replaceChildren(errorBox(e));
    }
  }

  load();
  return { onResync: load, unmount() { disposed = true; } };
}
