// Test 1: scroll events at 25/50/75/100 % of the document, each once per page view; none on a page that
// cannot scroll; thresholds visible at load are flagged.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectorAndBrowser, initScript, sleep } from './lib.mjs';

// One collector and one browser for the file (lib.mjs).
const shared = collectorAndBrowser();

/** Open `path` with the tracker (no consent needed), and return the page and its page_view_id. */
async function open(path) {
  const context = await shared.browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.addInitScript(initScript({ requireConsent: false }));
  await page.goto(shared.collector.url + path);
  const pageViewId = await page.waitForFunction(() => window.pulse?.status && pulse.status().page_view_id)
    .then((h) => h.jsonValue());
  return { context, page, pageViewId };
}

/** Wheel down until the bottom of the page (as a person would), then back up and down again. */
async function wheelToBottom(page) {
  await page.mouse.move(600, 300);
  for (let i = 0; i < 40; i++) {
    await page.mouse.wheel(0, 300);
    await sleep(20);
    const atBottom = await page.evaluate(() => scrollY + innerHeight >= document.documentElement.scrollHeight - 1);
    if (atBottom) return true;
  }
  return false;
}

async function flushedEvents(page, pageViewId) {
  assert.equal(await page.evaluate(() => pulse.flush()), true, 'the tracker could not flush its queue');
  return shared.collector.events().filter((e) => e.page_view_id === pageViewId);
}

test('scrolling a 5000 px page to the bottom yields exactly four scroll events', async () => {
  const { context, page, pageViewId } = await open('/long.html');
  assert.ok(await wheelToBottom(page), 'the page did not scroll to the bottom');
  await page.evaluate(() => scrollTo(0, 0));
  await sleep(100);
  assert.ok(await wheelToBottom(page), 'the page did not scroll to the bottom a second time');
  await sleep(100);
  const events = await flushedEvents(page, pageViewId);
  await context.close();

  assert.equal(events.filter((e) => e.event_type === 'page_view').length, 1);
  const scrolls = events.filter((e) => e.event_type === 'scroll');
  assert.deepEqual(scrolls.map((e) => e.scroll_depth_pct).sort((a, b) => a - b), [25, 50, 75, 100]);
  for (const e of scrolls) {
    assert.equal(e.doc_height_px, 5000);
    assert.equal(e.viewport_height_px, 720);
    assert.ok(!e.properties?.visible_at_load, `${e.scroll_depth_pct} % is not visible at load`);
    // the deepest offset reached when the threshold fired: the bottom of the viewport is past it
    assert.ok((e.scroll_depth_px + 720) / 5000 * 100 >= e.scroll_depth_pct - 0.5, JSON.stringify(e));
  }
  assert.equal(scrolls.find((e) => e.scroll_depth_pct === 100).scroll_depth_px, 5000 - 720);
});

test('a page that cannot scroll yields no scroll events', async () => {
  const { context, page, pageViewId } = await open('/flat.html');
  await page.mouse.move(600, 300);
  for (let i = 0; i < 5; i++) await page.mouse.wheel(0, 500);
  await page.keyboard.press('End');
  await sleep(300);
  const events = await flushedEvents(page, pageViewId);
  await context.close();
  assert.equal(events.filter((e) => e.event_type === 'page_view').length, 1, 'the page view arrives');
  assert.deepEqual(events.filter((e) => e.event_type === 'scroll'), []);
});

test('thresholds already visible at load are sent once, flagged visible_at_load', async () => {
  // 1000 px in a 720 px viewport: 72 % visible without scrolling
  const { context, page, pageViewId } = await open('/short.html');
  assert.ok(await wheelToBottom(page));
  await sleep(100);
  const events = await flushedEvents(page, pageViewId);
  await context.close();
  const scrolls = events.filter((e) => e.event_type === 'scroll').sort((a, b) => a.scroll_depth_pct - b.scroll_depth_pct);
  assert.deepEqual(scrolls.map((e) => [e.scroll_depth_pct, !!e.properties?.visible_at_load]),
    [[25, true], [50, true], [75, false], [100, false]]);
});
