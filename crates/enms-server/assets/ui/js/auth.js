// Who this browser is to the server. A person signs in with a name and
// password (POST /api/auth/login) and gets a session token that expires;
// an API token can be pasted instead. Either is kept in localStorage and
// sent by api.js as Authorization: Bearer, by the realtime client as a
// WebSocket subprotocol ("bearer.<token>") or ?token= for EventSource,
// which cannot set headers. When the server answers 401 the sign-in dialog
// opens once, and the page reloads signed in so every view and the live
// connection use the new token. The header shows who is signed in.

const KEY = 'enms.token';
const base = document.querySelector('meta[name="enms-base"]')?.content ?? '';
let asking = null;

export function getToken() {
  try { return localStorage.getItem(KEY) || null; } catch { return null; }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(KEY, token); else localStorage.removeItem(KEY);
  } catch { /* private mode: the token lasts for this page only */ }
}

/** Shows the sign-in dialog (once, however many requests were refused). */
export function askForToken(reason) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.className = 'sign-in-dialog';
    dialog.setAttribute('aria-labelledby', 'sign-in-title');
    dialog.innerHTML = `
      <form class="sign-in" novalidate>
        <h2 id="sign-in-title">Sign in</h2>
        <p class="muted reason"></p>
        <label>User name <input name="username" autocomplete="username" required></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
        <p class="error" role="alert" hidden></p>
        <div class="actions"><button type="submit" class="primary">Sign in</button></div>
      </form>
      <details class="use-token">
        <summary>Use an API token instead</summary>
        <form class="token">
          <label>Token <input name="token" type="password" autocomplete="off" required placeholder="enms_…"></label>
          <p class="muted small">Made by an administrator (<code>enms token create --role viewer --name you</code>). It is kept in this browser only.</p>
          <div class="actions"><button type="submit">Use token</button></div>
        </form>
      </details>`;
    dialog.querySelector('.reason').textContent = reason ?? 'This server needs you to sign in.';
    const signIn = dialog.querySelector('form.sign-in');
    const error = signIn.querySelector('.error');
    const button = signIn.querySelector('button');
    signIn.addEventListener('submit', async (e) => {
      e.preventDefault();
      const username = signIn.username.value.trim();
      const password = signIn.password.value;
      if (!username || !password) {
        showError(error, 'Enter your user name and password.');
        return;
      }
      button.disabled = true;
      try {
        const res = await fetch(`${base}/api/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username, password }),
        });
        const data = await res.json().catch(() => null);
        if (!res.ok) {
          showError(error, refusal(res, data));
          signIn.password.value = '';
          signIn.password.focus();
          return;
        }
        setToken(data.access_token);
        resolve();
        location.reload();
      } catch (err) {
        showError(error, `The server cannot be reached (${err.message}).`);
      } finally {
        button.disabled = false;
      }
    });
    dialog.querySelector('form.token').addEventListener('submit', (e) => {
      e.preventDefault();
      setToken(e.target.token.value.trim());
      resolve();
      location.reload();
    });
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    document.body.append(dialog);
    dialog.showModal();
    signIn.username.focus();
  });
  return asking;
}

function showError(el, message) {
  el.textContent = message;
  el.hidden = false;
}

/** What a refused sign-in tells the person. */
function refusal(res, data) {
  const code = data?.error?.code;
  const wait = Number(res.headers.get('retry-after'));
  const minutes = wait > 0 ? Math.ceil(wait / 60) : null;
  if (code === 'locked_out') return `Too many failed attempts: this user is locked${minutes ? ` for ${minutes} more minute${minutes === 1 ? '' : 's'}` : ''}.`;
  if (code === 'rate_limited') return `Too many attempts from this address; try again in ${wait || 'a few'} seconds.`;
  return data?.error?.message ?? `Sign-in failed (HTTP ${res.status}).`;
}

/** Marks the header when the server runs without authentication. */
export function showOpenMode(header) {
  const badge = document.createElement('span');
  badge.className = 'badge open-mode';
  badge.textContent = 'open · no auth';
  badge.title = 'This server runs without API tokens (loopback only). Anyone who can reach it can read and change everything.';
  header.append(badge);
}

/**
 * Shows who is signed in, with a sign-out button: a session is ended on the
 * server, an API token is only forgotten by this browser.
 */
export function showCaller(header, me) {
  const box = document.createElement('span');
  box.className = 'caller';
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = `${me.kind === 'token' ? 'token ' : ''}${me.name} · ${me.role}`;
  if (me.expires_at) who.title = `Signed in until ${new Date(me.expires_at).toLocaleString()}`;
  const out = document.createElement('button');
  out.type = 'button';
  out.className = 'sign-out';
  out.textContent = me.kind === 'session' ? 'Sign out' : 'Forget token';
  out.addEventListener('click', async () => {
    if (me.kind === 'session') {
      await fetch(`${base}/api/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${getToken()}` } }).catch(() => {});
    }
    setToken(null);
    location.reload();
  });
  box.append(who, out);
  header.append(box);
}
