// The MLflow UI as `pulse mlflow` serves it, in headless Chromium: a browser that never opened MLflow (a fresh
// profile) opens the purchase-intent experiment in the model-training view (not MLflow 3's GenAI view, which
// shows traces and no metric columns), with the intent run named for its version and test date and the
// model's and a baseline's test ROC-AUC as columns; the segmentation run is named for its k, date and version.
// The runs come from pulse's own ml/ functions on small synthetic data (mlflow_runs.py), in a fresh PULSE_HOME.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { HERE, PULSE_BIN, freePort, launchBrowser, sleep } from './lib.mjs';

const PYTHON = process.env.PULSE_PYTHON || join(dirname(PULSE_BIN), 'python');
const home = mkdtempSync(join(tmpdir(), 'pulse-mlflow-'));
const env = { ...process.env, PULSE_HOME: home };
for (const name of ['PULSE_LANDING', 'PULSE_WAREHOUSE', 'PULSE_MLFLOW_DB', 'PULSE_MLFLOW_URI', 'PULSE_EXPORTS', 'DAGSTER_HOME']) {
  delete env[name];
}
let logged, server, output = '', base, browser;

before(async () => {
  logged = JSON.parse(execFileSync(PYTHON, [join(HERE, 'mlflow_runs.py')], { env, encoding: 'utf8', timeout: 300000 }));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(PULSE_BIN, ['mlflow', '--host', '127.0.0.1', '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk) => { output = (output + chunk).slice(-20000); };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);
  const deadline = Date.now() + 90000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`pulse mlflow exited ${server.exitCode}:\n${output}`);
    try {
      if ((await fetch(`${base}/health`)).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`pulse mlflow not ready after 90 s:\n${output}`);
    await sleep(250);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((ok) => server.once('exit', ok));
    server.kill('SIGTERM');
    await Promise.race([exited, sleep(15000)]);
    if (server.exitCode === null) server.kill('SIGKILL');
  }
  rmSync(home, { recursive: true, force: true });
});

/** A page of a fresh browser context (no MLflow choice stored), its requests leaving 127.0.0.1 recorded. */
async function freshPage() {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) external.push(r.url()); });
  return { context, page, external };
}

test('runs were logged with their names and the baselines beside the model', () => {
  assert.match(logged.intent_run_name, /^purchase_intent v1 test \d{4}-\d{2}-\d{2}$/);
  assert.match(logged.segments_run_name, /^segments k=\d+ as of \d{4}-\d{2}-\d{2} v1$/);
  for (const metric of ['test_roc_auc', 'rfm_test_roc_auc', 'recency_test_roc_auc']) {
    assert.equal(typeof logged.intent_metrics[metric], 'number', metric);
  }
});

test('the intent experiment opens in the model-training view with the run and its metric columns', async () => {
  const { context, page, external } = await freshPage();
  try {
    // as a user gets there: the home page, then the experiment (its address without any view parameter)
    await page.goto(`${base}/`);
    await page.goto(`${base}/#/experiments/${logged.intent_experiment_id}`);
    await page.waitForURL(/workflowType=machine_learning/, { timeout: 30000 });
    assert.match(page.url(), new RegExp(`#/experiments/${logged.intent_experiment_id}/runs`));
    await page.getByText(logged.intent_run_name, { exact: true }).first().waitFor({ timeout: 30000 });
    for (const column of ['test_roc_auc', 'rfm_test_roc_auc']) {
      await page.getByText(column, { exact: true }).first().waitFor({ timeout: 15000 });
    }
    const stored = await page.evaluate(() => localStorage.getItem('mlflow.workflowType_v1'));
    assert.equal(stored, '"machine_learning"');
    assert.deepEqual(external, [], 'requests that left 127.0.0.1');
  } catch (error) {
    error.message += `\nurl: ${page.url()}\npage text: ${(await page.innerText('body').catch(() => '')).slice(0, 3000)}`;
    throw error;
  } finally {
    await context.close();
  }
});

test('the segmentation run is named for its k, snapshot date and version', async () => {
  const { context, page } = await freshPage();
  try {
    await page.goto(`${base}/#/experiments/${logged.segments_experiment_id}`);
    await page.waitForURL(/workflowType=machine_learning/, { timeout: 30000 });
    await page.getByText(logged.segments_run_name, { exact: true }).first().waitFor({ timeout: 30000 });
    await page.getByText('silhouette', { exact: true }).first().waitFor({ timeout: 15000 });
  } finally {
    await context.close();
  }
});

test('a browser that chose the GenAI view keeps it', async () => {
  const { context, page } = await freshPage();
  try {
    await context.addInitScript(() => {
      if (localStorage.getItem('mlflow.workflowType_v1') === null) localStorage.setItem('mlflow.workflowType_v1', '"genai"');
    });
    await page.goto(`${base}/#/experiments/${logged.intent_experiment_id}`);
    await page.waitForURL(/workflowType=genai/, { timeout: 30000 });
    assert.equal(await page.evaluate(() => localStorage.getItem('mlflow.workflowType_v1')), '"genai"');
  } finally {
    await context.close();
  }
});
