// The API token of this browser: kept in localStorage, sent by api.js as
// Authorization: Bearer, by the realtime client as a WebSocket subprotocol
// ("bearer.<token>") or ?token= for EventSource, which cannot set headers.
// When the server answers 401 the user is asked for a token once, and the
// page reloads with it so every view and the live connection use it.

const KEY = 'enms.token';
let asking = null;

export function getToken() {
  try { return localStorage.getItem(KEY) || null; } catch { return null; }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(KEY, token); else localStorage.removeItem(KEY);
  } catch { /* private mode: the token lasts for this page only */ }
}

/** Shows the token dialog (once, however many requests were refused). */
export function askForToken(reason) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.className = 'token-dialog';
    dialog.setAttribute('aria-labelledby', 'token-title');
    dialog.innerHTML = `
      <form method="dialog">
        <h2 id="token-title">API token needed</h2>
        <p class="muted"></p>
        <label>Token <input name="token" type="password" autocomplete="off" required placeholder="enms_…"></label>
        <p class="muted small">Ask an administrator for one (<code>enms token create --role viewer --name you</code>). It is kept in this browser only.</p>
        <div class="actions"><button type="submit" class="primary">Use token</button></div>
      </form>`;
    dialog.querySelector('p.muted').textContent = reason ?? 'This server needs an API token.';
    const input = dialog.querySelector('input');
    dialog.querySelector('form').addEventListener('submit', () => {
      setToken(input.value.trim());
      resolve();
      location.reload();
    });
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/** Marks the header when the server runs without authentication. */
export function showOpenMode(header) {
  const badge = document.createElement('span');
  badge.className = 'badge open-mode';
  badge.textContent = 'open · no auth';
  badge.title = 'This server runs without API tokens (loopback only). Anyone who can reach it can read and change everything.';
  header.append(badge);
}
