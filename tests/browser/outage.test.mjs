// Test 7: the collector is down for a while. Events made meanwhile (across navigations and reloads) wait in
// the tracker's localStorage queue and arrive once the collector is back on the same port, with the event_ids
// the page gave them before the outage.
//
// The pages and pulse.js are served from disk by the browser context (context.route) so that they load while
// the collector is down, as from a CDN; only the tracker's POSTs go to the collector.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Collector, PAGES, TRACKER, collectorAndBrowser, initScript, recordRequests, sentEvents, sleep } from './lib.mjs';

// One collector and one browser for the file (lib.mjs).
const shared = collectorAndBrowser();

async function servePagesFromDisk(context) {
  await context.route((url) => url.port === String(shared.collector.port) && !url.pathname.startsWith('/collect'),
    (route) => {
      const path = new URL(route.request().url()).pathname;
      const file = path === '/pulse.js' ? TRACKER : join(PAGES, path.slice(1));
      try {
        route.fulfill({ body: readFileSync(file), contentType: file.endsWith('.js') ? 'text/javascript' : 'text/html' });
      } catch {
        route.fulfill({ status: 404, body: 'not found' });
      }
    });
}

const ready = (page) => page.waitForFunction(() => window.pulse?.status);

test('events made while the collector is down arrive after it returns, with their original ids', async () => {
  const context = await shared.browser.newContext();
  await servePagesFromDisk(context);
  await context.addInitScript(initScript({ requireConsent: false, retryMaxSeconds: 1 }));
  const requests = recordRequests(context);
  const page = await context.newPage();
  await page.goto(shared.collector.url + '/other.html');
  await ready(page);
  assert.equal(await page.evaluate(() => pulse.flush()), true, 'the collector is up');

  await shared.collector.stop();
  const sentBefore = requests.length;
  const made = []; // ids given on the client side during the outage
  made.push(...await page.evaluate(() => [pulse.track('custom.down_1'), pulse.addToCart({ product_id: 'p-9', price: 5 })]));
  await sleep(1300); // the batch timer fires: refused connection, backoff
  await page.goto(shared.collector.url + '/long.html'); // pagehide keepalive fails too
  await ready(page);
  made.push(await page.evaluate(() => pulse.track('custom.down_2')));
  await page.mouse.wheel(0, 5000);
  await sleep(300);
  await page.reload();
  await ready(page);
  made.push(await page.evaluate(() => pulse.track('custom.down_3')));
  await sleep(1500);

  // everything the page tried to send while down (page views and scrolls included), as the page made it
  const tried = new Map(sentEvents(requests.slice(sentBefore)).map((e) => [e.event_id, e]));
  for (const id of made) assert.ok(tried.has(id), `${id} was tried during the outage`);
  assert.ok(tried.size >= 8, `${tried.size} distinct events tried`);
  const queued = await page.evaluate(() => JSON.parse(localStorage.getItem('pulse:q') || '[]').map((e) => e.event_id));
  for (const id of tried.keys()) assert.ok(queued.includes(id), `${id} waits in the localStorage queue`);
  const acknowledged = new Set(shared.collector.events().map((e) => e.event_id));
  for (const id of tried.keys()) assert.ok(!acknowledged.has(id), 'not acknowledged before the collector is back');

  // the same collector (same PULSE_HOME) back on the same port; the open page retries on its own
  shared.collector = await new Collector({ home: shared.collector.home, port: shared.collector.port }).start();
  const arrived = await shared.collector.waitForEvents((e) => tried.has(e.event_id), {
    until: (es) => new Set(es.map((e) => e.event_id)).size === tried.size, timeout: 15000, message: 'the queued events',
  });
  for (const e of arrived) {
    const original = tried.get(e.event_id);
    assert.equal(e.event_type, original.event_type);
    assert.equal(e.event_time, original.event_time, 'the event keeps the time it was made');
  }
  await page.waitForFunction(() => !localStorage.getItem('pulse:q'), null, { timeout: 5000 });
  await context.close();
});
