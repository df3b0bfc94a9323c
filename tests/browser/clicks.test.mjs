// Test 3: clicks are tracked only on elements matching the configured selectors (closest() of the target),
// described by tag#id.class or data-pulse-name; what a user types into an input never leaves the page.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectorAndBrowser, initScript, recordRequests } from './lib.mjs';

// One collector and one browser for the file (lib.mjs).
const shared = collectorAndBrowser();

const TYPED_EMAIL = 'secret.typed.8841@example.com';
const TYPED_NOTES = 'my private notes 5521';

test('only matching elements produce click events, and typed values never leak', async () => {
  const context = await shared.browser.newContext();
  const requests = recordRequests(context);
  const page = await context.newPage();
  await page.addInitScript(initScript({ requireConsent: false, clickSelectors: ['.buy', '[data-track]'] }));
  await page.goto(shared.collector.url + '/clicks.html');
  const pageViewId = await page.waitForFunction(() => window.pulse?.status && pulse.status().page_view_id)
    .then((h) => h.jsonValue());

  await page.click('#buy'); //               .buy
  await page.click('#plain'); //             not matched
  await page.click('#promo-label'); //       inside a[data-track]
  await page.click('#untracked'); //         not matched
  await page.click('#box'); //               data-pulse-name
  await page.click('#email'); //             input[data-track]: clicked and typed into
  await page.keyboard.type(TYPED_EMAIL);
  await page.click('#notes');
  await page.keyboard.type(TYPED_NOTES);
  await page.click('#email'); //             clicked again, now with a value
  await page.click('#notes');
  await page.click('h1'); //                 not matched
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => pulse.flush()), true);
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + document.cookie);

  const events = shared.collector.events().filter((e) => e.page_view_id === pageViewId);
  const clicks = events.filter((e) => e.event_type === 'click').map((e) => e.element);
  assert.deepEqual(clicks, [
    'button#buy.btn.buy', 'a#promo', 'hero-card', 'input#email.field', 'textarea#notes', 'input#email.field',
    'textarea#notes',
  ]);

  const everything = [
    JSON.stringify(shared.collector.events()), JSON.stringify(shared.collector.deadLetters()), storage,
    ...requests.map((r) => `${r.url} ${JSON.stringify(r.headers)} ${r.body}`),
  ].join('\n');
  for (const secret of [TYPED_EMAIL, TYPED_NOTES, 'secret.typed', 'private notes']) {
    assert.ok(!everything.includes(secret), `"${secret}" leaked into a payload, a URL or storage`);
  }
  assert.ok(requests.some((r) => r.url.endsWith('/collect')), 'the tracker did send');
  await context.close();
});

test('no click events without selectors (the default)', async () => {
  const context = await shared.browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(initScript({ requireConsent: false }));
  await page.goto(shared.collector.url + '/clicks.html');
  const pageViewId = await page.waitForFunction(() => window.pulse?.status && pulse.status().page_view_id)
    .then((h) => h.jsonValue());
  for (const sel of ['#buy', '#plain', '#promo-label', '#box', '#email']) await page.click(sel);
  assert.equal(await page.evaluate(() => pulse.flush()), true);
  const events = shared.collector.events().filter((e) => e.page_view_id === pageViewId);
  assert.deepEqual(events.map((e) => e.event_type), ['page_view']);
  await context.close();
});
