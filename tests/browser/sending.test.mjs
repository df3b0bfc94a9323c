// The tracker's sending rules, with the collector's answers scripted (context.route on /collect): retries with
// backoff on 5xx / 408 / 429 (Retry-After respected), the same event ids on every attempt, a batch dropped on
// other 4xx, the rejected ones dropped on 2xx, the capped queue, batch sizes, keepalive bodies under 64 KB,
// sessions, and single-page-app page views.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectorAndBrowser, initScript, setHidden, sleep } from './lib.mjs';

// One collector and one browser for the file (lib.mjs).
const shared = collectorAndBrowser();

/** A page whose /collect answers come from `answer(attempt, batch)` -> {status, headers?, body?}. */
async function scripted(config, answer, path = '/other.html') {
  const context = await shared.browser.newContext();
  const attempts = [];
  await context.route('**/collect', async (route) => {
    const events = JSON.parse(route.request().postData()).events;
    attempts.push({ at: Date.now(), ids: events.map((e) => e.event_id), bytes: route.request().postData().length });
    const a = await answer(attempts.length, events);
    await route.fulfill({
      status: a.status, headers: a.headers || {}, contentType: 'application/json',
      body: a.body ?? JSON.stringify({ accepted: events.length, rejected: 0, errors: [] }),
    });
  });
  await context.addInitScript(initScript({ requireConsent: false, ...config }));
  const page = await context.newPage();
  await page.goto(shared.collector.url + path);
  await page.waitForFunction(() => window.pulse?.status);
  return { context, page, attempts };
}

const pending = (page) => page.evaluate(() => pulse.status().pending);
const stored = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('pulse:q') || '[]').map((e) => e.event_id));

test('503 with Retry-After: retried after that long, with the same event ids', async () => {
  const { context, page, attempts } = await scripted({}, (n) =>
    n === 1 ? { status: 503, headers: { 'Retry-After': '2' }, body: '{"error":"overloaded"}' } : { status: 200 });
  await page.evaluate(() => { pulse.track('custom.retry_me'); pulse.flush(); });
  await page.waitForFunction(() => pulse.status().pending === 0, null, { timeout: 8000 });
  await context.close();
  assert.equal(attempts.length, 2);
  assert.deepEqual(attempts[1].ids, attempts[0].ids);
  const gap = attempts[1].at - attempts[0].at;
  assert.ok(gap >= 1900 && gap < 3500, `retried after ${gap} ms, Retry-After said 2 s`);
});

test('network errors and 5xx: exponential backoff with jitter, then delivery', async () => {
  const { context, page, attempts } = await scripted({ retryMaxSeconds: 2 }, (n) =>
    n <= 3 ? { status: n === 2 ? 429 : 500 } : { status: 200 });
  await page.evaluate(() => { pulse.track('custom.flaky'); pulse.flush(); });
  await page.waitForFunction(() => pulse.status().pending === 0, null, { timeout: 15000 });
  await context.close();
  assert.equal(attempts.length, 4);
  for (const a of attempts) assert.deepEqual(a.ids, attempts[0].ids);
  const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i].at);
  // 1 s, 2 s, then capped at retryMaxSeconds (2 s), each times a jitter in [0.5, 1]
  [1000, 2000, 2000].forEach((base, i) => {
    assert.ok(gaps[i] >= base * 0.5 - 50 && gaps[i] <= base + 700, `gap ${i}: ${gaps[i]} ms for a base of ${base} ms`);
  });
});

test('400 and 413: the batch is dropped, not retried', async () => {
  for (const status of [400, 413]) {
    const { context, page, attempts } = await scripted({}, () => ({ status, body: '{"error":"bad"}' }));
    await page.evaluate(() => { pulse.track('custom.bad'); pulse.flush(); });
    await page.waitForFunction(() => pulse.status().pending === 0, null, { timeout: 5000 });
    await sleep(1200);
    assert.equal(attempts.length, 1, `${status}: one attempt`);
    assert.deepEqual(await stored(page), []);
    await context.close();
  }
});

test('200 with rejected events: the whole batch leaves the queue', async () => {
  const { context, page, attempts } = await scripted({}, (n, events) => ({
    status: 200,
    body: JSON.stringify({ accepted: events.length - 1, rejected: 1, errors: [{ index: 0, reason: 'x' }] }),
  }));
  await page.evaluate(() => { pulse.track('custom.one'); pulse.flush(); });
  await page.waitForFunction(() => pulse.status().pending === 0, null, { timeout: 5000 });
  await sleep(1200);
  assert.equal(attempts.length, 1);
  assert.deepEqual(await stored(page), []);
  await context.close();
});

test('the queue is capped at queueMax (oldest dropped) and batches at batchSize', async () => {
  const { context, page, attempts } = await scripted({ queueMax: 5, retryMaxSeconds: 30 }, () => ({ status: 503 }));
  const ids = await page.evaluate(() => Array.from({ length: 9 }, (_, i) => pulse.track('custom.n', { i })));
  await sleep(300);
  assert.deepEqual(await stored(page), ids.slice(-5), 'the 5 newest events are kept');
  await context.close();

  const big = await scripted({ batchSize: 20 }, () => ({ status: 200 }));
  await big.page.evaluate(() => { for (let i = 0; i < 70; i++) pulse.track('custom.many', { i }); });
  await big.page.waitForFunction(() => pulse.status().pending === 0, null, { timeout: 5000 });
  assert.ok(big.attempts.every((a) => a.ids.length <= 20), big.attempts.map((a) => a.ids.length).join(','));
  assert.equal(new Set(big.attempts.flatMap((a) => a.ids)).size, 71); // with the page view
  await big.context.close();
});

test('hiding the page flushes with keepalive bodies under 64 KB in flight; the rest stays queued', async () => {
  let release;
  const held = new Promise((ok) => { release = ok; });
  const { context, page, attempts } = await scripted({ flushDelayMs: 60000, batchSize: 1000 }, async () => {
    await held; // keep every request in flight
    return { status: 200 };
  });
  await page.evaluate(() => {
    const pad = 'x'.repeat(1000);
    for (let i = 0; i < 150; i++) pulse.track('custom.big', { i, pad });
  });
  await setHidden(page, true);
  await sleep(500);
  const burst = attempts.reduce((s, a) => s + a.bytes, 0);
  const sent = attempts.reduce((s, a) => s + a.ids.length, 0);
  assert.ok(attempts.length >= 1 && burst <= 64000, `${attempts.length} keepalive requests, ${burst} bytes in flight`);
  assert.ok(sent < 151, 'what does not fit stays queued');
  release();
  await page.evaluate(() => pulse.flush());
  await page.waitForFunction(() => pulse.status().pending === 0, null, { timeout: 5000 });
  assert.equal(new Set(attempts.flatMap((a) => a.ids)).size, 151);
  await context.close();
});

test('a new session after sessionMinutes of inactivity', async () => {
  const { context, page } = await scripted({ sessionMinutes: 0.02 }, () => ({ status: 200 })); // 1.2 s
  await page.evaluate(() => pulse.track('custom.a'));
  const first = await page.evaluate(() => pulse.status().session_id);
  await sleep(500);
  await page.evaluate(() => pulse.track('custom.b'));
  assert.equal(await page.evaluate(() => pulse.status().session_id), first, 'still active: same session');
  await sleep(1500);
  await page.evaluate(() => pulse.track('custom.c'));
  const second = await page.evaluate(() => pulse.status().session_id);
  assert.notEqual(second, first);
  assert.equal(JSON.parse(await page.evaluate(() => localStorage.getItem('pulse:sess'))).id, second);
  await context.close();
});

test('single-page apps: pushState and popstate start page views, anchors do not', async () => {
  const context = await shared.browser.newContext();
  await context.addInitScript(initScript({ requireConsent: false }));
  const page = await context.newPage();
  await page.goto(shared.collector.url + '/other.html?utm_source=news&utm_medium=email&utm_campaign=fall&utm_term=x');
  await page.waitForFunction(() => window.pulse?.status);
  const views = [await page.evaluate(() => pulse.status().page_view_id)];
  await page.evaluate(() => history.pushState({}, '', '/app/products'));
  views.push(await page.evaluate(() => pulse.status().page_view_id));
  await page.evaluate(() => { location.hash = 'section-2'; });
  await page.evaluate(() => history.replaceState({}, '', '/app/products#top'));
  views.push(await page.evaluate(() => pulse.status().page_view_id));
  await page.evaluate(() => history.go(-2)); // popstate back to the first URL
  await page.waitForFunction((v) => pulse.status().page_view_id !== v, views[2]);
  views.push(await page.evaluate(() => pulse.status().page_view_id));
  assert.equal(await page.evaluate(() => pulse.flush()), true);
  await context.close();
  assert.equal(new Set(views).size, 3, 'the anchor and the replaceState to the same path made no view');
  const events = shared.collector.events().filter((e) => e.event_type === 'page_view' && views.includes(e.page_view_id));
  const byView = new Map(events.map((e) => [e.page_view_id, e]));
  const first = byView.get(views[0]);
  assert.deepEqual([first.utm_source, first.utm_medium, first.utm_campaign, first.properties], ['news', 'email', 'fall', { utm_term: 'x' }]);
  const spa = byView.get(views[1]);
  assert.equal(new URL(spa.page_url).pathname, '/app/products');
  assert.equal(spa.referrer, first.page_url);
  assert.ok(byView.get(views[3]).page_url.includes('/app/products') === false);
});
