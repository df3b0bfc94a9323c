// The read API's /docs (Swagger UI) and /redoc (ReDoc) render their operations on a machine without internet:
// every script, style and icon comes from `pulse serve` itself (pulse/activation/serve.py), none from a CDN.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PulseProcess, freePort, keepLocal, launchBrowser, pulseEnv } from './lib.mjs';

const OPERATIONS = ['/health', '/users/{user_key}', '/users/{user_key}/next', '/audiences', '/audiences/{name}', '/stream/firings'];
let home;
let api;
let base;
let browser;

before(async () => {
  home = mkdtempSync(join(tmpdir(), 'pulse-api-docs-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // no snapshot published: the API answers 503 for data, and its documentation is there all the same
  api = new PulseProcess(['serve', '--host', '127.0.0.1', '--port', String(port), '--exports', join(home, 'exports')], {
    env: pulseEnv(home),
  });
  await api.ready(`${base}/openapi.json`, { timeout: 60000 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (api) await api.stop('SIGTERM', 30000);
  rmSync(home, { recursive: true, force: true });
});

/** A page of the API opened with only this machine reachable; returns the page, its requests and the blocked ones. */
async function open(path) {
  const context = await browser.newContext();
  const outside = await keepLocal(context);
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  // A request the page's Content-Security-Policy refuses is stopped inside the browser: it never reaches the
  // network (nor keepLocal's route). ReDoc's sidebar logo from cdn.redoc.ly is one.
  const failed = [];
  const refused = [];
  context.on('requestfailed', (r) => {
    const error = r.failure()?.errorText;
    if (error === 'csp' || error === 'net::ERR_BLOCKED_BY_CSP') refused.push(r.url());
    else failed.push(`${r.url()} ${error}`);
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const response = await page.goto(`${base}${path}`);
  assert.equal(response.status(), 200);
  return { context, page, outside, requests, refused, failed, errors, response };
}

function assertLocal({ outside, requests, refused, failed, errors, response }) {
  assert.deepEqual(outside, [], `requests leaving the machine: ${outside.join(', ')}`);
  const sent = requests.filter((url) => !refused.includes(url));
  assert.ok(sent.length >= 3, `the page loaded its assets: ${sent.join(', ')}`);
  for (const url of sent) assert.ok(url.startsWith(`${base}/`), `a request not to the API: ${url}`);
  assert.deepEqual(failed, []);
  assert.deepEqual(errors, []);
  assert.match(response.headers()['content-security-policy'] ?? '', /default-src 'self'/);
}

test('/docs (Swagger UI) renders every operation offline', async () => {
  const opened = await open('/docs');
  const { page, context } = opened;
  await page.locator('.opblock').first().waitFor({ timeout: 30000 });
  const paths = await page.locator('.opblock .opblock-summary-path').allInnerTexts();
  assert.deepEqual(new Set(paths.map((p) => p.replace(/\u200b/g, '').trim())), new Set(OPERATIONS));
  assert.ok(await page.getByText('pulse read API', { exact: false }).first().isVisible());
  // an operation opens with its parameters and responses: the UI works, not only its skeleton
  await page.locator('.opblock-summary', { hasText: '/audiences/{name}' }).first().click();
  await page.getByText('page_size').first().waitFor({ timeout: 10000 });
  assertLocal(opened);
  assert.ok(opened.requests.some((u) => u.endsWith('/docs-assets/swagger-ui-bundle.js')));
  assert.ok(opened.requests.some((u) => u.endsWith('/openapi.json')));
  await context.close();
});

test('/redoc (ReDoc) renders every operation offline', async () => {
  const opened = await open('/redoc');
  const { page, context } = opened;
  await page.getByText('The profile of one user').first().waitFor({ timeout: 30000 });
  for (const summary of ['The snapshot being served', 'The audiences of the snapshot', "One page of an audience's members"]) {
    assert.ok(await page.getByText(summary).count() > 0, summary);
  }
  // the operation's request path is rendered (in ReDoc's right panel)
  const text = await page.locator('body').innerText();
  assert.match(text, /\/audiences\/\{name\}/);
  assertLocal(opened);
  assert.ok(opened.requests.some((u) => u.endsWith('/docs-assets/redoc.standalone.js')));
  await context.close();
});
