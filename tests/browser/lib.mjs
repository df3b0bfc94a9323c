// Shared helpers of the browser tests: the real collector (`pulse collect`) on a free port with a fresh
// PULSE_HOME, Chromium from the Debian package through playwright-core, and the acknowledged events read
// back from the collector's files.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..');
export const PAGES = join(HERE, 'pages');
export const SITE = join(REPO, 'pulse', 'collector', 'site');
export const TRACKER = join(REPO, 'pulse', 'collector', 'static', 'pulse.js');
export const PULSE_BIN = process.env.PULSE_BIN || join(REPO, '.venv', 'bin', 'pulse');
export const CHROMIUM = process.env.PULSE_CHROMIUM || '/usr/bin/chromium';

const HINT = 'run `make browser-deps` (Debian chromium + `npm ci` in tests/browser)';

async function playwright() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: ${HINT}`);
  try {
    return await import('playwright-core');
  } catch (error) {
    throw new Error(`playwright-core is not installed: ${HINT} (${error.message})`);
  }
}

/** Headless Chromium; nothing is ever downloaded. The flags keep it off the (closed) network. */
export async function launchBrowser() {
  const { chromium } = await playwright();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
}

export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
// A timer that does not keep the process alive (for races against a deadline).
const deadline = (ms) => new Promise((ok) => setTimeout(ok, ms).unref());

/** Wait until `probe()` returns a truthy value (returned), or throw `message` after `timeout` ms. */
export async function waitFor(probe, { timeout = 10000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}`);
    await sleep(interval);
  }
}

/**
 * `pulse collect` on 127.0.0.1:`port` serving `site`, with its files under `home`.
 * `start()` waits for GET /readyz == 200; `stop()` sends SIGTERM and waits for the exit (the collector then
 * rolls its open segment into the landing zone).
 */
export class Collector {
  constructor({ site = PAGES, home = mkdtempSync(join(tmpdir(), 'pulse-browser-')), port = 0, args = [] } = {}) {
    if (!existsSync(PULSE_BIN)) throw new Error(`${PULSE_BIN} is missing: run \`make install\` (or set PULSE_BIN)`);
    this.site = site;
    this.home = home;
    this.port = port;
    this.args = args;
    this.output = '';
    this.proc = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    const args = ['collect', '--host', '127.0.0.1', '--port', String(this.port), '--site', this.site, ...this.args];
    // every path under this PULSE_HOME: drop the path variables a caller (pytest, the Makefile) may export
    const env = { ...process.env, PULSE_HOME: this.home };
    for (const name of ['PULSE_LANDING', 'PULSE_WAREHOUSE', 'PULSE_MLFLOW_DB', 'PULSE_EXPORTS', 'PULSE_COLLECTOR', 'DAGSTER_HOME']) {
      delete env[name];
    }
    const proc = spawn(PULSE_BIN, args, {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-20000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const exited = new Promise((ok) => proc.once('exit', (code, signal) => ok({ code, signal })));
    this.exited = exited;
    const deadline = Date.now() + 30000;
    for (;;) {
      const state = await Promise.race([exited, sleep(100).then(() => null)]);
      if (state) throw new Error(`pulse collect exited (${JSON.stringify(state)}):\n${this.output}`);
      try {
        const r = await fetch(`${this.url}/readyz`);
        if (r.status === 200) return this;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`pulse collect not ready after 30 s:\n${this.output}`);
    }
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.exited, deadline(15000).then(() => null)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }

  /** Every event the collector acknowledged: the open spool segment(s) and the rolled landing files. */
  events() {
    const files = [];
    const spool = join(this.home, 'collector', 'spool');
    if (existsSync(spool)) {
      for (const f of readdirSync(spool)) if (f.endsWith('.jsonl')) files.push(join(spool, f));
    }
    const landing = join(this.home, 'landing', 'events');
    if (existsSync(landing)) {
      for (const day of readdirSync(landing)) {
        for (const f of readdirSync(join(landing, day))) {
          if (f.startsWith('collector-') && f.endsWith('.jsonl')) files.push(join(landing, day, f));
        }
      }
    }
    const events = [];
    for (const file of files) {
      let text;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue; // rolled away between the listing and the read: found again on the next poll
      }
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        try {
          events.push(JSON.parse(line));
        } catch { /* a line being written */ }
      }
    }
    return events;
  }

  /** Events that match `filter`, once `until(events)` holds (default: at least one). */
  async waitForEvents(filter, { until = (es) => es.length > 0, timeout = 10000, message = 'events' } = {}) {
    let last = [];
    try {
      return await waitFor(() => {
        last = this.events().filter(filter);
        return until(last) ? last : null;
      }, { timeout, message });
    } catch (error) {
      error.message += `\nmatching events so far: ${JSON.stringify(last, null, 1).slice(0, 4000)}`;
      throw error;
    }
  }

  /** Lines in the dead-letter files (events the collector refused). */
  deadLetters() {
    const dir = join(this.home, 'collector', 'dead-letter');
    if (!existsSync(dir)) return [];
    return readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean))
      .map((line) => JSON.parse(line));
  }

  cleanup() {
    rmSync(this.home, { recursive: true, force: true });
  }
}

/**
 * The tracker's stub queue with a `pulse('init', config)` call, as an init script: it runs before any page
 * script, so the tracker (loaded by the page's one line) starts with `config` merged over its data-* attributes.
 */
export function initScript(config = {}, ...calls) {
  const queued = [['init', config], ...calls].map((c) => `pulse(...${JSON.stringify(c)});`).join('\n');
  return `window.pulse = window.pulse || function () { (pulse.q = pulse.q || []).push(arguments); };\n${queued}`;
}

/** Record every request of a browser context (method, url, headers, body), including the tracker's. */
export function recordRequests(context) {
  const requests = [];
  context.on('request', (request) => {
    requests.push({
      method: request.method(),
      url: request.url(),
      headers: request.headers(),
      body: request.postData() || '',
      resourceType: request.resourceType(),
    });
  });
  return requests;
}

/** The events of the /collect bodies among `requests`. */
export function sentEvents(requests) {
  const events = [];
  for (const r of requests) {
    if (r.method !== 'POST' || !new URL(r.url).pathname.endsWith('/collect')) continue;
    try {
      events.push(...JSON.parse(r.body).events);
    } catch { /* not a batch */ }
  }
  return events;
}

/** The tracker's localStorage keys on the page's origin. */
export function storageKeys(page) {
  return page.evaluate(() => Object.keys(localStorage));
}

/** Wait until the tracker on `page` has no unacknowledged events left (pulse.status().pending == 0). */
export async function waitFlushed(page, timeout = 10000) {
  await page.waitForFunction(() => window.pulse && window.pulse.status && window.pulse.status().pending === 0,
    null, { timeout, polling: 100 });
}

/**
 * A pass-through HTTP proxy in front of the collector that records the method, path and headers of every
 * request the browser really sends, CORS preflights (OPTIONS) included: Playwright's request events do not
 * show preflights, the wire does.
 */
export class RecordingProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.requests = [];
    this.server = createHttpServer((req, res) => {
      this.requests.push({ method: req.method, path: req.url, headers: req.headers });
      const upstream = httpRequest({
        host: '127.0.0.1', port: this.targetPort, method: req.method, path: req.url,
        headers: { ...req.headers, host: `127.0.0.1:${this.targetPort}` },
      }, (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => { res.writeHead(502); res.end(); });
      req.pipe(upstream);
    });
  }

  async start() {
    this.port = await freePort();
    await new Promise((ok) => this.server.listen(this.port, '127.0.0.1', ok));
    return this;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((ok) => this.server.close(ok));
  }
}

/**
 * Make the page hidden or visible, as the tracker sees it. Headless Chromium keeps every page 'visible':
 * bringing another page to the front (page.bringToFront), minimizing the window (CDP
 * Browser.setWindowBounds) or Page.setWebLifecycleState leave document.visibilityState at 'visible'
 * (checked with Chromium 156 and playwright-core 1.64.1). So this overrides document.visibilityState and
 * document.hidden on the page and dispatches 'visibilitychange', as the browser does when a tab goes to the
 * background. Returns the page's Date.now() at the switch.
 */
export function setHidden(page, hidden) {
  return page.evaluate((h) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    document.dispatchEvent(new Event('visibilitychange'));
    return Date.now();
  }, hidden);
}

/** Keep the user active: move the mouse every `every` ms for `ms` ms. */
export async function beActive(page, ms, every = 150) {
  const end = Date.now() + ms;
  let x = 100;
  while (Date.now() < end) {
    x = x === 100 ? 200 : 100;
    await page.mouse.move(x, 200);
    await sleep(every);
  }
}

// One collector (on a free port, in a fresh PULSE_HOME) and one headless browser for a whole test file,
// started before its first test and stopped (the collector's files removed) after its last. Read them as
// `shared.collector` and `shared.browser` inside the tests (a test may replace shared.collector, e.g. restart it).
export function collectorAndBrowser(options = {}) {
  const shared = { collector: undefined, browser: undefined };
  before(async () => {
    shared.collector = await new Collector(options).start();
    shared.browser = await launchBrowser();
  });
  after(async () => {
    await shared.browser?.close();
    await shared.collector?.stop();
    shared.collector?.cleanup();
  });
  return shared;
}

// ------------------------------------------------------------------------------------------------------------
// Any `pulse` command as a process (`pulse run`, `pulse ui`, `pulse serve`, ...), for the tests of the UIs.

const PATH_VARIABLES = ['PULSE_LANDING', 'PULSE_WAREHOUSE', 'PULSE_MLFLOW_DB', 'PULSE_EXPORTS', 'PULSE_COLLECTOR', 'DAGSTER_HOME'];

/** The environment of a pulse command with every path under `home` (and `extra` on top). */
export function pulseEnv(home, extra = {}) {
  const env = { ...process.env, PULSE_HOME: home, ...extra };
  for (const name of PATH_VARIABLES) delete env[name];
  return env;
}

/** Run `pulse ...args` to its end; resolves { code, output } (output: the last 20,000 characters). */
export function runPulse(args, { env = process.env, timeout = 600000 } = {}) {
  return new Promise((ok, fail) => {
    const proc = spawn(PULSE_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk) => { output = (output + chunk).slice(-20000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const timer = setTimeout(() => { proc.kill('SIGKILL'); fail(new Error(`pulse ${args.join(' ')} ran over ${timeout} ms:\n${output}`)); }, timeout);
    proc.once('error', fail);
    proc.once('exit', (code) => { clearTimeout(timer); ok({ code, output }); });
  });
}

/**
 * A long-running `pulse ...args` (a server). `ready(url)` waits until GET `url` answers 200 and throws with
 * the process's output if it exits first; `stop(signal)` sends `signal` and resolves { code, signal } once it
 * has exited (SIGKILL after `timeout` ms, reported as an error).
 */
export class PulseProcess {
  constructor(args, { env = process.env } = {}) {
    if (!existsSync(PULSE_BIN)) throw new Error(`${PULSE_BIN} is missing: run \`make install\` (or set PULSE_BIN)`);
    this.args = args;
    this.output = '';
    this.proc = spawn(PULSE_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk) => { this.output = (this.output + chunk).slice(-20000); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    this.exited = new Promise((ok) => this.proc.once('exit', (code, signal) => ok({ code, signal })));
  }

  get pid() {
    return this.proc.pid;
  }

  async ready(url, { timeout = 120000 } = {}) {
    const end = Date.now() + timeout;
    for (;;) {
      const state = await Promise.race([this.exited, sleep(250).then(() => null)]);
      if (state) throw new Error(`pulse ${this.args.join(' ')} exited (${JSON.stringify(state)}):\n${this.output}`);
      try {
        const r = await fetch(url);
        if (r.status === 200) return this;
      } catch { /* not listening yet */ }
      if (Date.now() > end) throw new Error(`${url} not ready after ${timeout} ms:\n${this.output}`);
    }
  }

  async stop(signal = 'SIGTERM', timeout = 90000) {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    const below = descendants(this.proc.pid);
    const done = await Promise.race([this.exited, deadline(timeout).then(() => null)]);
    if (done) return done;
    for (const pid of [this.proc.pid, ...below]) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await this.exited;
    throw new Error(`pulse ${this.args.join(' ')} did not exit within ${timeout} ms of ${signal}:\n${this.output}`);
  }
}

/** The pids of every process below `pid` (Linux /proc), to check that none outlives its parent. */
export function descendants(pid) {
  const found = [];
  const walk = (parent) => {
    let children = [];
    try {
      children = readdirSync(`/proc/${parent}/task`).flatMap((task) => {
        try {
          return readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
        } catch { return []; }
      });
    } catch { return; }
    for (const child of children) {
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

/** Whether process `pid` is running (a zombie is not). */
export function running(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch { return false; }
}

/**
 * Let the pages of `context` reach only this machine: any request to another host is aborted and listed in
 * the returned array (it stays empty when a page needs nothing from outside).
 */
export async function keepLocal(context) {
  const outside = [];
  await context.route(() => true, (route) => {
    const { hostname, protocol } = new URL(route.request().url());
    if (protocol === 'data:' || protocol === 'blob:' || ['127.0.0.1', 'localhost', '[::1]'].includes(hostname)) {
      return route.continue();
    }
    outside.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  return outside;
}
