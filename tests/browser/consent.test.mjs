// Test 6: consent (the default requireConsent: true). Before a decision nothing is stored and nothing is sent;
// a grant sends the held events with ids; a withdrawal clears storage, expires the server's cookie and stops.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectorAndBrowser, recordRequests, sentEvents, sleep, storageKeys, waitFlushed } from './lib.mjs';

// One collector and one browser for the file (lib.mjs).
const shared = collectorAndBrowser();

const collects = (requests) => requests.filter((r) => new URL(r.url).pathname.startsWith('/collect'));

async function nothingKept(context, page) {
  assert.deepEqual(await context.cookies(), [], 'cookies');
  assert.deepEqual(await storageKeys(page), [], 'localStorage keys');
  assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), [], 'sessionStorage keys');
  assert.equal(await page.evaluate(() => document.cookie), '');
}

test('nothing before consent; held events sent with ids on a grant; everything cleared on withdrawal', async () => {
  const context = await shared.browser.newContext();
  const requests = recordRequests(context);
  const page = await context.newPage();
  await page.goto(shared.collector.url + '/long.html'); // the page's one line, default configuration
  await page.waitForFunction(() => window.pulse?.status);
  await page.mouse.wheel(0, 1500);
  const heldIds = await page.evaluate(() => [
    pulse.productView({ product_id: 'p-1', category: 'shoes', price: 10 }),
    pulse.identify('u-42'),
    pulse.track('custom.before_consent', { n: 1 }),
  ]);
  await sleep(1800); // longer than the batch timer
  assert.deepEqual(collects(requests), [], 'requests to the collector before consent');
  await nothingKept(context, page);
  const status = await page.evaluate(() => pulse.status());
  assert.equal(status.consent, null);
  assert.ok(status.held >= 4, `events held in memory: ${status.held}`);
  assert.equal(status.anonymous_id, null);

  // grant: the held events go, with ids
  await page.evaluate(() => pulse.consent({ analytics: true, personalization: false }));
  await waitFlushed(page);
  const pageViewId = status.page_view_id;
  const events = shared.collector.events().filter((e) => e.page_view_id === pageViewId);
  const byId = new Map(events.map((e) => [e.event_id, e]));
  for (const id of heldIds) assert.ok(byId.has(id), `held event ${id} arrived with its id`);
  const anonymousId = await page.evaluate(() => pulse.status().anonymous_id);
  assert.match(anonymousId, /^[0-9a-f-]{36}$/);
  const types = events.map((e) => e.event_type).sort();
  assert.deepEqual(types.filter((t) => t !== 'scroll' && t !== 'page_ping'),
    ['custom.before_consent', 'identify', 'page_view', 'product_view']);
  for (const e of events) {
    assert.equal(e.anonymous_id, anonymousId);
    assert.ok(e.session_id, 'session id');
    assert.equal(e.consent_analytics, true);
    assert.equal(e.consent_personalization, false);
    assert.ok(e.network_user_id, 'the collector set its id (consent given)');
  }
  assert.equal(byId.get(heldIds[0]).user_id, undefined, 'the product view came before the login');
  assert.equal(byId.get(heldIds[2]).user_id, 'u-42');
  const cookies = await context.cookies();
  assert.deepEqual(cookies.map((c) => [c.name, c.httpOnly]), [['pulse_nid', true]]);
  assert.deepEqual((await storageKeys(page)).sort(), ['pulse:aid', 'pulse:consent', 'pulse:sess', 'pulse:uid']);

  // the grant is remembered: a reload sends at once, same anonymous id
  await page.reload();
  await page.waitForFunction(() => window.pulse?.status);
  assert.equal(await page.evaluate(() => pulse.status().consent.analytics), true);
  await waitFlushed(page);
  const reloadView = await page.evaluate(() => pulse.status().page_view_id);
  const [view] = await shared.collector.waitForEvents((e) => e.page_view_id === reloadView);
  assert.equal(view.anonymous_id, anonymousId);

  // withdrawal
  const before = requests.length;
  await page.evaluate(() => pulse.consent(false));
  await page.waitForResponse((r) => r.url().endsWith('/collect/forget'));
  assert.deepEqual(await storageKeys(page), [], 'localStorage after withdrawal');
  assert.deepEqual(await context.cookies(), [], 'the collector expired its cookie');
  const forget = requests.slice(before).filter((r) => r.url.endsWith('/collect/forget'));
  assert.equal(forget.length, 1);
  assert.equal(forget[0].method, 'POST');
  assert.equal(await page.evaluate(() => pulse.track('custom.after_withdrawal')), undefined);
  await page.mouse.wheel(0, 3000);
  await sleep(1500);
  assert.deepEqual(sentEvents(requests.slice(before)), [], 'nothing sent after withdrawal');
  assert.deepEqual(await storageKeys(page), []);

  // and a new page starts undecided again (the refusal was kept in memory only)
  await page.reload();
  await page.waitForFunction(() => window.pulse?.status);
  assert.equal(await page.evaluate(() => pulse.status().consent), null);
  await sleep(1200);
  assert.deepEqual(collects(requests.slice(before)).map((r) => r.url.replace(shared.collector.url, '')), ['/collect/forget']);
  await nothingKept(context, page);
  await context.close();
});

test('a refusal before any grant sends nothing but the forget request and stores nothing', async () => {
  const context = await shared.browser.newContext();
  const requests = recordRequests(context);
  const page = await context.newPage();
  await page.goto(shared.collector.url + '/clicks.html');
  await page.waitForFunction(() => window.pulse?.status);
  await page.evaluate(() => pulse.track('custom.before_refusal'));
  await page.evaluate(() => pulse.consent(false));
  assert.equal(await page.evaluate(() => pulse.track('custom.after_refusal')), undefined);
  assert.deepEqual(await page.evaluate(() => pulse.status()).then((s) => [s.consent, s.held]), [false, 0]);
  await sleep(1500);
  assert.deepEqual(collects(requests).map((r) => `${r.method} ${new URL(r.url).pathname} ${r.body}`),
    ['POST /collect/forget ']);
  await nothingKept(context, page);
  await context.close();
});

test('a decision in one tab holds in the other tabs of the site', async () => {
  const context = await shared.browser.newContext();
  const requests = recordRequests(context);
  const [a, b] = [await context.newPage(), await context.newPage()];
  await a.goto(shared.collector.url + '/other.html');
  await b.goto(shared.collector.url + '/long.html');
  await Promise.all([a, b].map((p) => p.waitForFunction(() => window.pulse?.status)));
  const heldInB = await b.evaluate(() => pulse.track('custom.tab_b'));
  await a.evaluate(() => pulse.consent(true));
  await b.waitForFunction(() => pulse.status().consent && pulse.status().pending === 0, null, { timeout: 5000 });
  await shared.collector.waitForEvents((e) => e.event_id === heldInB, { message: "tab B's held event" });

  await a.evaluate(() => pulse.consent(false));
  await b.waitForFunction(() => pulse.status().consent === false, null, { timeout: 5000 });
  const before = requests.length;
  assert.equal(await b.evaluate(() => pulse.track('custom.tab_b_after')), undefined);
  await sleep(1300);
  assert.deepEqual(sentEvents(requests.slice(before)), []);
  assert.deepEqual(await storageKeys(b), []);
  assert.equal(requests.filter((r) => r.url.endsWith('/collect/forget')).length, 1, 'one forget request');
  await context.close();
});
