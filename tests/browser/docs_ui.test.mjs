// The UIs `pulse ui` starts, on a home materialized by `pulse run`: the Dagster asset graph, a GX check's
// Data Docs link followed to its validation page over http:// (the docs server beside Dagster), a dbt model's
// link followed to its page in the dbt docs, nothing fetched from outside the machine by Dagster or the dbt
// docs, and Ctrl-C stopping Dagster and the docs server together. One materialization for the whole file.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  PulseProcess, descendants, freePort, keepLocal, launchBrowser, pulseEnv, running, runPulse,
} from './lib.mjs';

// Small, and large enough for every asset: the intent model needs 3 weekly snapshots with a complete
// 7-day label window (the gate's minimum counts are lowered for a 60-user shop).
const RUN = ['run', '--users', '60', '--days', '30'];
let home;
let dagster;
let docs;
let ui;
let browser;

before(async () => {
  home = mkdtempSync(join(tmpdir(), 'pulse-docs-ui-'));
  const [uiPort, docsPort] = [await freePort(), await freePort()];
  dagster = `http://127.0.0.1:${uiPort}`;
  docs = `http://127.0.0.1:${docsPort}`;
  // the run writes the links and the UI serves them: both read the same PULSE_DOCS_URL
  const env = pulseEnv(home, {
    PULSE_DOCS_URL: docs, PULSE_INTENT_MIN_POSITIVES: '1', PULSE_INTENT_MIN_NEGATIVES: '1',
  });
  const run = await runPulse(RUN, { env, timeout: 720000 });
  assert.equal(run.code, 0, `pulse ${RUN.join(' ')} failed:\n${run.output}`);
  ui = new PulseProcess(['ui', '--host', '127.0.0.1', '--port', String(uiPort)], { env });
  await ui.ready(`${docs}/`, { timeout: 60000 });
  await ui.ready(`${dagster}/server_info`, { timeout: 300000 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (ui && ui.proc.exitCode === null && ui.proc.signalCode === null) await ui.stop('SIGTERM');
  rmSync(home, { recursive: true, force: true });
});

/** A fresh browser context that can reach this machine only; `outside` lists what it tried to fetch elsewhere. */
async function localContext() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const outside = await keepLocal(context);
  const page = await context.newPage();
  // Dagster's "Join the Dagster community" dialog covers the page until someone skips it, and it may open
  // late on a loaded machine: whenever it is up before an action, skip it.
  await page.addLocatorHandler(page.getByRole('button', { name: 'Skip' }), (skip) => skip.click());
  return { context, page, outside };
}

/** Click `link` (Dagster opens metadata URLs in a new tab) and return the page it opened, loaded. */
async function follow(context, link) {
  const [opened] = await Promise.all([context.waitForEvent('page', { timeout: 30000 }), link.click()]);
  await opened.waitForLoadState('domcontentloaded');
  return opened;
}

test('the Dagster UI shows the asset graph: its groups, and the assets around user_profiles', async () => {
  const { context, page, outside } = await localContext();
  await page.goto(`${dagster}/asset-groups`);
  for (const group of ['ingest', 'transform', 'ml', 'activation']) {
    await page.getByText(group, { exact: true }).first().waitFor({ timeout: 60000 });
    // once in the sidebar's tree, once as a node of the graph (collapsed groups)
    await page.waitForFunction((g) => [...document.querySelectorAll('body *')]
      .filter((e) => e.children.length === 0 && e.textContent.trim() === g).length >= 2, group, { timeout: 60000 });
  }
  await page.goto(`${dagster}/assets/user_profiles?view=lineage`);
  for (const asset of ['user_profiles', 'fct_sessions', 'user_segments', 'user_intent_scores']) {
    await page.getByText(asset, { exact: true }).first().waitFor({ timeout: 60000 });
  }
  assert.deepEqual(outside, [], 'the Dagster UI fetched nothing from outside the machine');
  await context.close();
});

test("a GX check's Data Docs link opens its validation page over http://", async () => {
  const { context, page } = await localContext();
  await page.goto(`${dagster}/assets/fct_sessions?view=checks`);
  await page.getByText('gx_fct_sessions', { exact: true }).first().click({ timeout: 60000 });
  const link = page.locator(`a[href^="${docs}/gx/validations/fct_sessions/"]`).first();
  await link.waitFor({ timeout: 60000 });
  const validation = await follow(context, link);
  assert.ok(validation.url().startsWith(`${docs}/gx/validations/fct_sessions/`), validation.url());
  const text = await validation.locator('body').innerText();
  assert.match(text, /Expectation Validation Result/);
  assert.match(text, /Expectation Suite:\s*fct_sessions/);
  assert.match(text, /Status:\s*Succeeded/);
  for (const metric of ['unsessionized_events', 'negative_durations', 'duplicate_session_keys']) assert.match(text, new RegExp(metric));
  // GX's page links its styles and scripts on public CDNs (blocked here): it is read unstyled, and its
  // content does not depend on them. The docs home lists it among the latest validations.
  const index = page.locator(`a[href="${docs}/"]`).first();
  const home = await follow(context, index);
  const path = new URL(validation.url()).pathname;
  assert.equal(await home.locator(`a[href="${path}"]`).count(), 1, `the docs home links ${path}`);
  await context.close();
});

test("a dbt model's dbt docs link opens its page: columns and types from the warehouse's catalog", async () => {
  const { context, page, outside } = await localContext();
  await page.goto(`${dagster}/assets/fct_sessions`);
  const link = page.locator(`a[href="${docs}/dbt/#!/model/model.pulse.fct_sessions"]`).first();
  await link.waitFor({ timeout: 60000 });
  const model = await follow(context, link);
  await model.getByText('warehouse.main.fct_sessions').first().waitFor({ timeout: 60000 });
  const row = model.locator('tr', { hasText: 'session_key' }).first();
  await row.waitFor({ timeout: 30000 });
  assert.match(await row.innerText(), /VARCHAR/i, 'the column type comes from catalog.json');
  assert.deepEqual(outside, [], 'Dagster and the dbt docs fetched nothing from outside the machine');
  await context.close();
});

test('Ctrl-C stops the Dagster UI and the docs server together, leaving no process', async () => {
  const children = descendants(ui.pid);
  assert.ok(children.length >= 3, `dagster dev and its webserver and daemon run below pulse ui: ${children}`);
  const { code } = await ui.stop('SIGINT');
  assert.equal(code, 0, ui.output);
  const left = children.filter(running);
  assert.deepEqual(left, [], `processes left behind: ${left}`);
  for (const url of [`${docs}/`, `${dagster}/server_info`]) {
    await assert.rejects(fetch(url), `${url} still answers`);
  }
});
