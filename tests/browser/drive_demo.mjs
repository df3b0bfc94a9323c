#!/usr/bin/env node
// Drive the demo shop as a visitor would, for end-to-end tests: open BASE_URL (a `pulse collect` serving the
// demo shop), accept consent, sign in, browse categories and products (with scrolling and pings), search, add
// to the cart, check out and buy, then wait until the tracker's queue is empty (every event acknowledged by
// the collector) and exit 0. Prints one JSON line: the visitor's ids and what the collector answered.
//
//   BASE_URL=http://127.0.0.1:8090 node tests/browser/drive_demo.mjs
//   node tests/browser/drive_demo.mjs http://127.0.0.1:8090
//
// Env: PULSE_DEMO_HEARTBEAT (seconds, default 1: short pings so page views have engagement time; set 0 to
// keep the shop's own configuration), PULSE_CHROMIUM (default /usr/bin/chromium).
import { beActive, initScript, launchBrowser, waitFlushed } from './lib.mjs';

const base = (process.argv[2] || process.env.BASE_URL || '').replace(/\/+$/, '');
if (!base) {
  console.error('usage: BASE_URL=http://HOST:PORT node drive_demo.mjs   (or the URL as the argument)');
  process.exit(2);
}
const heartbeat = Number(process.env.PULSE_DEMO_HEARTBEAT ?? 1);

async function main() {
  const browser = await launchBrowser();
  const answers = { requests: 0, accepted: 0, rejected: 0, unread: 0, errors: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    if (heartbeat > 0) {
      await context.addInitScript(initScript({ heartbeatSeconds: heartbeat, minimumVisitSeconds: heartbeat }));
    }
    const reading = [];
    context.on('requestfinished', (request) => {
      if (request.method() !== 'POST' || !request.url().endsWith('/collect')) return;
      answers.requests++;
      reading.push(request.response().then((r) => r.json()).then((body) => {
        answers.accepted += body.accepted || 0;
        answers.rejected += body.rejected || 0;
        answers.errors.push(...(body.errors || []));
      }, () => { answers.unread++; })); // the answer to a keepalive request of a page that is gone
    });
    const page = await context.newPage();
    const linger = async (ms = 1500) => {
      await page.mouse.wheel(0, 600);
      await beActive(page, ms);
    };

    await page.goto(`${base}/`);
    await page.click('#consent-accept');
    await linger();
    await page.click('#category-shoes');
    await linger();
    await page.click('#product-p-101');
    await linger(2500);
    await page.selectOption('#quantity', '2');
    await page.click('#add-to-cart');
    await page.click('#nav-jackets');
    await linger();
    await page.click('#product-p-301');
    await linger();
    await page.click('#add-to-cart');
    await page.fill('#search-query', 'bag');
    await page.press('#search-query', 'Enter');
    await page.waitForURL(/search\.html/);
    await linger();
    await page.click('#product-p-202');
    await linger();
    await page.selectOption('#account', 'u-1002'); // sign in: pulse.identify
    await page.click('#signin');
    await page.waitForSelector('#user');
    await page.click('#cart-link');
    await page.waitForSelector('#checkout');
    await linger();
    await page.click('#checkout');
    await page.click('#place-order');
    await page.waitForSelector('#thanks');
    const order = await page.textContent('#order-id');
    await page.evaluate(() => pulse.flush());
    await waitFlushed(page, 30000);
    const status = await page.evaluate(() => pulse.status());
    await Promise.all(reading);
    await context.close();
    if (answers.rejected) throw new Error(`the collector rejected events: ${JSON.stringify(answers.errors)}`);
    console.log(JSON.stringify({
      anonymous_id: status.anonymous_id, session_id: status.session_id, user_id: status.user_id, order_id: order,
      ...answers, errors: undefined,
    }));
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(`drive_demo: ${error.stack || error}`);
  process.exit(1);
});
