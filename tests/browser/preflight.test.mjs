// Test 5: with the default configuration the browser never sends a CORS preflight (OPTIONS): the tracker
// POSTs text/plain bodies with no custom header. Every request is watched on the wire, through a recording
// proxy in front of the collector, because Playwright's request events do not show preflights.
//
// Same-origin requests are never preflighted, whatever their headers; so the flow also runs with the endpoint
// on another origin (localhost vs 127.0.0.1), where a non-simple request (a JSON content type, a custom
// header) would be preflighted and the proxy would see the OPTIONS.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Collector, RecordingProxy, SITE, initScript, launchBrowser, sleep, waitFlushed } from './lib.mjs';

let collector, proxy, browser;
before(async () => {
  collector = await new Collector({ site: SITE }).start(); // the demo shop, with its one-line install
  proxy = await new RecordingProxy(collector.port).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await proxy?.stop();
  await collector?.stop();
  collector?.cleanup();
});

const SAFELISTED = new Set([
  'accept', 'accept-encoding', 'accept-language', 'connection', 'content-length', 'content-type', 'cookie', 'host',
  'origin', 'referer', 'user-agent', 'priority', 'cache-control', 'pragma',
]);

function checkCollectRequests(requests) {
  const posts = requests.filter((r) => r.method === 'POST' && r.path === '/collect');
  assert.ok(posts.length >= 2, `the tracker sent ${posts.length} batches`);
  for (const r of posts) {
    assert.equal(r.headers['content-type'], 'text/plain;charset=UTF-8');
    const custom = Object.keys(r.headers).filter((h) => !SAFELISTED.has(h) && !/^sec-(fetch|ch)-/.test(h));
    assert.deepEqual(custom, [], 'headers a browser would preflight');
  }
}

test('the demo shop flow (consent, browsing, cart, purchase, withdrawal) sends no OPTIONS', async () => {
  const base = `http://127.0.0.1:${proxy.port}`;
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.click('#consent-accept');
  await page.click('#category-shoes');
  await page.click('#product-p-101');
  await page.mouse.wheel(0, 2000);
  await page.click('#add-to-cart');
  await page.goto(`${base}/search.html?q=jacket`);
  await page.click('#product-p-301');
  await page.click('#add-to-cart');
  await page.click('#cart-link');
  await page.click('#checkout');
  await page.click('#place-order');
  await page.waitForSelector('#thanks');
  await waitFlushed(page);
  await page.click('#privacy');
  await page.click('#consent-deny'); // withdrawal: POST /collect/forget
  await sleep(300);
  await context.close();

  const methods = proxy.requests.map((r) => `${r.method} ${r.path}`);
  assert.deepEqual(methods.filter((m) => m.startsWith('OPTIONS')), [], 'preflights on the wire');
  assert.ok(methods.includes('POST /collect/forget'), 'the withdrawal reached the collector');
  checkCollectRequests(proxy.requests);
  const types = new Set(collector.events().map((e) => e.event_type));
  for (const t of ['page_view', 'product_view', 'add_to_cart', 'search', 'checkout', 'purchase', 'click']) {
    assert.ok(types.has(t), `${t} arrived`);
  }
});

test('with the endpoint on another origin there is still no OPTIONS', async () => {
  proxy.requests.length = 0;
  const context = await browser.newContext();
  const page = await context.newPage();
  // 127.0.0.1 page, localhost endpoint: cross-origin. The collector sends no CORS headers, so the page cannot
  // read the answers (the tracker retries), but every POST is on the wire, and no OPTIONS is.
  await page.addInitScript(initScript({ requireConsent: false, endpoint: `http://localhost:${proxy.port}/collect` }));
  await page.goto(`http://127.0.0.1:${proxy.port}/product.html?id=p-202`);
  await page.waitForFunction(() => window.pulse?.status);
  await page.evaluate(() => pulse.track('custom.cross_origin'));
  await page.evaluate(() => pulse.flush());
  await sleep(1500);
  await page.goto('about:blank'); // the keepalive path too
  await sleep(300);
  await context.close();
  const methods = proxy.requests.map((r) => `${r.method} ${r.path}`);
  assert.deepEqual(methods.filter((m) => m.startsWith('OPTIONS')), [], 'preflights on the wire');
  checkCollectRequests(proxy.requests);
});
