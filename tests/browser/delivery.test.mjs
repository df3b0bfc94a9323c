// Test 4: navigating away right after three events still delivers them (keepalive requests on pagehide).
// Each run leaves for about:blank or closes its tab, and the next run's page starts with the tracker's
// localStorage cleared (an init script, before the tracker loads), so the next-page-load resend from
// localStorage cannot help: this measures the unload path alone. One browser and one context for all runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectorAndBrowser, initScript, sleep } from './lib.mjs';

// One collector and one browser for the file (lib.mjs).
const shared = collectorAndBrowser();

const RUNS = Number(process.env.PULSE_DELIVERY_RUNS || 50);

test(`three events right before navigating away are delivered (>= 99 % over ${RUNS} runs)`, async () => {
  const expected = [];
  const started = Date.now();
  const context = await shared.browser.newContext();
  await context.addInitScript('try { localStorage.clear(); } catch (e) {}');
  await context.addInitScript(initScript({ requireConsent: false }));
  for (let run = 0; run < RUNS; run++) {
    const page = await context.newPage();
    await page.goto(`${shared.collector.url}/other.html?run=${run}`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction(() => window.pulse?.status);
    const ids = await page.evaluate((r) => [
      pulse.track('custom.first', { run: r }),
      pulse.addToCart({ product_id: 'p-1', price: 10, quantity: 1, run: r }),
      pulse.track('custom.third', { run: r }),
    ], run);
    assert.equal(ids.filter(Boolean).length, 3);
    expected.push(...ids);
    // at once: the tracker's 1 s batch timer has not fired, only the pagehide flush can send them
    if (run % 2 === 0) {
      await page.goto('about:blank');
      await page.close();
    } else {
      await page.close();
    }
  }
  const seconds = (Date.now() - started) / 1000;
  const want = new Set(expected);
  let got = new Set();
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    got = new Set(shared.collector.events().map((e) => e.event_id).filter((id) => want.has(id)));
    if (got.size === want.size) break;
    await sleep(200);
  }
  await context.close();
  const rate = got.size / want.size;
  const lost = expected.map((id, i) => [id, i]).filter(([id]) => !got.has(id))
    .map(([, i]) => `run ${Math.floor(i / 3)} (${Math.floor(i / 3) % 2 ? 'page closed' : 'navigated'}) event ${i % 3}`);
  console.log(`delivered ${got.size}/${want.size} events (${(rate * 100).toFixed(1)} %) over ${RUNS} runs ` +
    `in ${seconds.toFixed(1)} s${lost.length ? `; lost: ${lost.join(', ')}` : ''}`);
  assert.ok(rate >= 0.99, `delivery rate ${(rate * 100).toFixed(1)} % is under 99 %`);
});
