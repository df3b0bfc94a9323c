// Test 2: page pings arrive on schedule (the first after minimumVisitSeconds, then every heartbeatSeconds)
// while the page is visible and the user active, and never while the tab is hidden or the user idle.
// Hidden is simulated (see setHidden in lib.mjs: headless Chromium never hides a page by itself).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { beActive, collectorAndBrowser, initScript, setHidden, sleep } from './lib.mjs';

// One collector and one browser for the file (lib.mjs).
const shared = collectorAndBrowser();

const MIN_VISIT = 2;
const HEARTBEAT = 1;

test('pings: first after the minimum visit, then every heartbeat; none hidden or idle', async () => {
  const context = await shared.browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.addInitScript(initScript({
    requireConsent: false, minimumVisitSeconds: MIN_VISIT, heartbeatSeconds: HEARTBEAT,
  }));
  await page.goto(shared.collector.url + '/long.html');
  const pageViewId = await page.waitForFunction(() => window.pulse?.status && pulse.status().page_view_id)
    .then((h) => h.jsonValue());
  await page.evaluate(() => scrollTo(0, 1000));

  await beActive(page, 4500); //  pings near 2, 3, 4 s
  const hiddenAt = await setHidden(page, true);
  await beActive(page, 2200); //  active but hidden: no ping at 5, 6 s
  const shownAt = await setHidden(page, false);
  await beActive(page, 1600); //  visible and active again: pings at 7, 8 s
  const idleAt = await page.evaluate(() => Date.now());
  await sleep(2600); //           idle: the tick at 9 s pings (activity since 8 s), none at 10 s
  assert.equal(await page.evaluate(() => pulse.flush()), true);
  await context.close();

  const events = shared.collector.events().filter((e) => e.page_view_id === pageViewId);
  const view = events.find((e) => e.event_type === 'page_view');
  assert.ok(view, 'the page view arrived');
  const t0 = Date.parse(view.event_time);
  const pings = events.filter((e) => e.event_type === 'page_ping').map((e) => ({ ...e, t: Date.parse(e.event_time) }))
    .sort((a, b) => a.t - b.t);
  const offsets = pings.map((p) => ((p.t - t0) / 1000).toFixed(2));
  console.log(`ping offsets from the page view (s): ${offsets.join(', ')}; hidden ${(hiddenAt - t0) / 1000}..` +
    `${(shownAt - t0) / 1000}, idle from ${(idleAt - t0) / 1000}`);

  const before = pings.filter((p) => p.t < hiddenAt);
  assert.ok(before.length >= 3, `at least 3 pings before hiding, got ${offsets}`);
  const first = (before[0].t - t0) / 1000;
  assert.ok(first >= MIN_VISIT - 0.05 && first < MIN_VISIT + 0.8, `first ping after ${first} s, not ~${MIN_VISIT} s`);
  for (let i = 1; i < before.length; i++) {
    const gap = (before[i].t - before[i - 1].t) / 1000;
    assert.ok(gap > HEARTBEAT - 0.3 && gap < HEARTBEAT + 0.6, `pings ${gap} s apart, not ~${HEARTBEAT} s`);
  }
  assert.deepEqual(pings.filter((p) => p.t >= hiddenAt && p.t <= shownAt).map((p) => p.event_time), [],
    'no ping while hidden');
  assert.ok(pings.some((p) => p.t > shownAt && p.t <= idleAt + 50), 'pings again once visible');
  assert.deepEqual(pings.filter((p) => p.t > idleAt + HEARTBEAT * 1000 + 100).map((p) => p.event_time), [],
    'no ping after a heartbeat without activity');

  for (const p of pings) {
    assert.equal(p.doc_height_px, 5000);
    assert.equal(p.viewport_height_px, 720);
    assert.equal(p.scroll_depth_px, 1000, 'the deepest offset reached');
    assert.equal(p.scroll_depth_pct, Math.round((1000 + 720) / 5000 * 100));
  }
});
