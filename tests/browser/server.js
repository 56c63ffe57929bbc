// Runs the real enms binary for the browser tests: a demo factory on a free
// port with its own data directory, stopped with SIGTERM (the drain path)
// and restartable on the same port and data.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = process.env.ENMS_BIN;
if (!BIN) throw new Error('ENMS_BIN must name the enms binary (scripts/browser-test sets it)');

export const C1 = 'c0000000-0000-0000-0000-000000000001';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export class EnmsServer {
  constructor(logDir, extraArgs = []) {
    this.extraArgs = extraArgs;
    this.base = extraArgs.includes('--base-path') ? extraArgs[extraArgs.indexOf('--base-path') + 1] : '';
    this.dir = mkdtempSync(join(tmpdir(), 'enms-browser-'));
    this.logDir = logDir;
    this.proc = null;
    this.starts = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}${this.base}`;
  }

  async start() {
    this.port ??= await freePort();
    this.starts += 1;
    const log = createWriteStream(join(this.logDir, `server-${this.port}-${this.starts}.log`));
    // Seven days of history unless a test asks for more.
    const days = this.extraArgs.includes('--demo-history-days') ? [] : ['--demo-history-days', '7'];
    this.proc = spawn(BIN, ['serve', '--demo', ...days, '--demo-interval', '1s', '--monitor-interval', '1s',
      '--bind', `127.0.0.1:${this.port}`, '--data-dir', this.dir, '--log-format', 'json', ...this.extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.pipe(log);
    this.proc.stderr.pipe(log);
    const exited = new Promise((_, reject) => this.proc.once('exit', (code) => reject(new Error(`enms exited with ${code} during start`))));
    await Promise.race([this.#ready(), exited]);
  }

  /** Polls health until the server answers (readiness, not a timed wait for an event). */
  async #ready() {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${this.url}/api/v1/health`);
        if (r.ok) return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('enms did not become healthy within 60 s');
  }

  /** A new API token made with `enms token create` in this server's database. */
  createToken(role, name) {
    return execFileSync(BIN, ['token', 'create', '--role', role, '--name', name, '--data-dir', this.dir],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  }

  /** A user made with `enms user create`, the password given on stdin. */
  createUser(role, name, password) {
    execFileSync(BIN, ['user', 'create', '--role', role, '--name', name, '--data-dir', this.dir],
      { encoding: 'utf8', input: `${password}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await done;
    this.proc = null;
  }

  async destroy() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async api(path, body) {
    const r = await fetch(`${this.url}${path}`, body === undefined ? {} : {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    const json = await r.json();
    if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  }

  publish(type, data) {
    return this.api('/api/v1/events', { type, data });
  }
}
