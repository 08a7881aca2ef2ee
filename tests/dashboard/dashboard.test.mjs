// The dashboard in headless Chromium against a real three-node cluster of the raptor binary:
// sign in through the form, watch live figures follow real traffic (HTTP API publishes,
// WebSocket subscribers, presence members on other nodes), inspect channels, terminate a
// signed-in user on another node (its socket closes with 4009), publish from the page, and
// drain a node from its own dashboard (confirm dialog; the node exits and the others drop it).
// No console error and no page error is allowed, except the two 401s the design implies
// (the first /admin/api/overview before signing in, and the deliberately wrong password).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import {
  SCREENSHOTS, SEE_MS, admin, configToml, launchBrowser, publish, randomPassword, signin, sleep,
  startCluster, stopNode, subscribe, waitClusterSize, watchErrors, wsClient,
} from './lib.mjs';

const PASSWORD = randomPassword();
let nodes = [];
let browser;
let page; // on n1
const errors = [];
const clients = [];

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  nodes = await startCluster(3, configToml([`password = "${PASSWORD}"`]));
  await waitClusterSize(nodes, 3, PASSWORD);
  browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await ctx.newPage();
  watchErrors(page, errors);
});

after(async () => {
  for (const c of clients) c.ws.terminate();
  if (browser) await browser.close().catch(() => {});
  await Promise.all(nodes.map(stopNode));
});

/** The raw value a hook shows (`data-value`), as a number. */
async function numAt(sel) {
  const v = await page.getAttribute(sel, 'data-value');
  return v === null || v === '' ? NaN : Number(v);
}

/** Waits until the number at `sel` satisfies `pred`, polling the page. */
async function waitNum(sel, pred, what, ms = SEE_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await numAt(sel).catch(() => NaN);
    if (pred(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: ${sel} is ${last} after ${ms} ms`);
    await sleep(100);
  }
}

const nodeCell = (id, col) => `#nodes tbody tr[data-node-id="${id}"] td[data-col="${col}"]`;

test('sign in through the form; three node rows', { timeout: 30000 }, async () => {
  await page.goto(`${nodes[0].base}/dashboard`);
  await page.waitForSelector('#login-form', { state: 'visible' });
  assert.equal(await page.isVisible('#app'), false, 'no data before signing in');
  await page.screenshot({ path: join(SCREENSHOTS, '1-login.png') });

  await page.fill('#login-password', 'not-the-password-at-all');
  await page.click('#login-submit');
  await page.waitForSelector('[data-testid=login-error]:not([hidden])');
  assert.match(await page.textContent('[data-testid=login-error]'), /invalid credentials/);

  await page.fill('#login-password', PASSWORD);
  await page.click('#login-submit');
  await page.waitForSelector('#app', { state: 'visible' });
  await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 3, null, { timeout: SEE_MS });
  const rows = await page.$$eval('#nodes tbody tr', (trs) => trs.map((tr) => ({
    id: tr.getAttribute('data-node-id'),
    self: tr.getAttribute('data-self'),
    state: tr.querySelector('td[data-col="state"]').getAttribute('data-value'),
    shards: tr.querySelector('td[data-col="shards"]').getAttribute('data-value'),
    version: tr.querySelector('td[data-col="version"]').textContent,
  })));
  assert.deepEqual(rows.map((r) => r.id), ['n1', 'n2', 'n3']);
  assert.deepEqual(rows.map((r) => r.self), ['true', 'false', 'false']);
  for (const r of rows) {
    assert.equal(r.state, 'ready');
    assert.equal(r.shards, '2');
    assert.ok(r.version.length > 0);
  }
  assert.equal(await page.textContent('[data-testid=node-count]'), '3');
  // The live stream is what updates the page (not the polling fallback).
  await page.waitForFunction(() => document.querySelector('[data-testid=live-status]').textContent === 'live', null, { timeout: SEE_MS });
});

test('HTTP API publishes show as messages in/s on the nodes that took them', { timeout: 20000 }, async () => {
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      await Promise.all([publish(nodes[0], 'rate-probe', 'tick', 'x'), publish(nodes[1], 'rate-probe', 'tick', 'x')]);
      await sleep(100);
    }
  })();
  try {
    await waitNum(nodeCell('n1', 'messages_in_per_sec'), (v) => v > 0, 'n1 (this node) messages in/s');
    await waitNum(nodeCell('n2', 'messages_in_per_sec'), (v) => v > 0, 'n2 (from gossip) messages in/s');
    await waitNum('[data-testid=total-messages-in]', (v) => v > 0, 'total messages in/s');
    await waitNum('#apps tbody tr[data-app-id="1"] td[data-col="messages_in_per_sec"]', (v) => v > 0, 'app 1 messages in/s');
    // The chart of this node's rate has the history and the live points, with a non-zero point.
    await page.waitForFunction(() => {
      const svg = document.querySelector('#chart-rate svg');
      const p = document.querySelector('#chart-rate path.line-in');
      return svg && Number(svg.getAttribute('data-points')) > 1 && p && /L/.test(p.getAttribute('d'));
    }, null, { timeout: SEE_MS });
  } finally {
    stop = true;
    await loop;
  }
  // The 24 h range loads its own series, and back.
  await page.click('#range-24h');
  await page.waitForFunction(() => document.querySelector('#range-24h').classList.contains('active') && document.querySelector('#chart-rate svg'), null, { timeout: SEE_MS });
  await page.click('#range-15m');
  await page.waitForFunction(() => Number(document.querySelector('#chart-rate svg')?.getAttribute('data-points')) > 1, null, { timeout: 6000 });
  await page.screenshot({ path: join(SCREENSHOTS, '2-overview.png'), fullPage: true });
});

test('subscribers show in the channels list (this node) and the inspector (cluster)', { timeout: 30000 }, async () => {
  await page.click('#tab-channels');
  await page.waitForSelector('#view-channels', { state: 'visible' });
  assert.equal(await page.inputValue('#channels-app'), '1');

  const a = await wsClient(nodes[0]);
  clients.push(a);
  await subscribe(a, 'news');
  const row = '#channels tbody tr[data-channel="news"]';
  await waitNum(`${row} td[data-col="subscription_count"]`, (v) => v === 1, 'news subscribers on n1 in the list');
  await waitNum('[data-testid=total-connections]', (v) => v >= 1, 'total connections');
  await waitNum('#apps tbody tr[data-app-id="1"] td[data-col="subscriptions"]', (v) => v >= 1, 'app 1 subscriptions on n1');

  await page.click(row);
  await page.waitForSelector('#inspector-body', { state: 'visible', timeout: SEE_MS });
  assert.equal(await page.textContent('[data-testid=inspector-name]'), 'news');
  await waitNum('[data-testid=inspector-subscriptions]', (v) => v === 1, 'inspector subscriptions');

  // A second subscriber on another node: the inspector counts the cluster, the list this node.
  const b = await wsClient(nodes[1]);
  clients.push(b);
  await subscribe(b, 'news');
  await waitNum('[data-testid=inspector-subscriptions]', (v) => v === 2, 'inspector subscriptions, cluster-wide');
  assert.equal(await page.getAttribute('[data-testid=inspector-occupied]', 'data-value'), 'true');
  assert.equal(await numAt(`${row} td[data-col="subscription_count"]`), 1, 'the list counts this node only');

  // Going: the count follows.
  b.close();
  await b.closed;
  await waitNum('[data-testid=inspector-subscriptions]', (v) => v === 1, 'inspector subscriptions after one left');

  // Sorted by rate instead: the same channels, no error.
  await page.selectOption('#channels-sort', 'rate');
  await waitNum(`${row} td[data-col="subscription_count"]`, (v) => v === 1, 'news in the list sorted by rate');
  assert.equal(await page.isVisible('[data-testid=channels-error]'), false);
  await page.selectOption('#channels-sort', 'subscribers');

  // A presence member on the third node, inspected by typing its channel's name.
  const m = await wsClient(nodes[2]);
  clients.push(m);
  await subscribe(m, 'presence-room', { user_id: 'u-7', user_info: { name: 'Bob' } });
  await page.fill('#inspect-name', 'presence-room');
  await page.click('#inspect-go');
  await page.waitForFunction(() => {
    const li = [...document.querySelectorAll('#inspector-members li[data-user-id]')].map((x) => x.textContent);
    return document.querySelector('[data-testid=inspector-name]').textContent === 'presence-room' && li.includes('u-7');
  }, null, { timeout: SEE_MS });
  await waitNum('[data-testid=inspector-users]', (v) => v === 1, 'presence users');
  await page.screenshot({ path: join(SCREENSHOTS, '3-channels.png'), fullPage: true });
});

test('operations: publish from the page, terminate a user on every node (4009)', { timeout: 30000 }, async () => {
  const sub = clients[0]; // on n1, subscribed to news
  const user = await wsClient(nodes[2]); // on n3
  const here = await wsClient(nodes[0]); // the same user on n1
  clients.push(user, here);
  await signin(user, 'u-1');
  await signin(here, 'u-1');

  await page.click('#tab-operations');
  await page.waitForSelector('#view-operations', { state: 'visible' });

  await page.selectOption('#publish-app', '1');
  await page.fill('#publish-channel', 'news');
  await page.fill('#publish-event', 'from-dashboard');
  await page.fill('#publish-data', 'hello from the dashboard');
  await page.click('#publish-submit');
  await page.waitForSelector('[data-testid=publish-result].ok', { timeout: SEE_MS });
  const got = await sub.waitFor((f) => f.event === 'from-dashboard' && f.channel === 'news', 'the event published from the page', SEE_MS);
  assert.equal(got.data, 'hello from the dashboard');

  // A refused publish shows the server's error.
  await page.fill('#publish-channel', 'bad channel name!');
  await page.click('#publish-submit');
  await page.waitForSelector('[data-testid=publish-result].error', { timeout: SEE_MS });

  await page.selectOption('#terminate-app', '1');
  await page.fill('#terminate-user', 'u-1');
  await page.click('#terminate-submit');
  await page.waitForSelector('[data-testid=terminate-result].ok', { timeout: SEE_MS });
  for (const [c, where] of [[user, 'n3'], [here, 'n1']]) {
    const closed = await Promise.race([c.closed, sleep(SEE_MS).then(() => null)]);
    assert.ok(closed, `the signed-in user on ${where} was not disconnected within 3 s`);
    assert.equal(closed.code, 4009, where);
  }
  // n1's overview counts the close it made.
  await waitNum('#closes tbody tr[data-code="4009"] td[data-col="count"]', (v) => v >= 1, 'closes with 4009 on n1');
  await page.screenshot({ path: join(SCREENSHOTS, '4-operations.png'), fullPage: true });
});

test('drain n3 from its own dashboard: it exits, n1 drops it', { timeout: 40000 }, async () => {
  // A separate context: the session cookie of one node is not valid on another, and all
  // nodes share the host name 127.0.0.1.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p3 = await ctx.newPage();
  const errs3 = watchErrors(p3, []);
  const client = await wsClient(nodes[2]);
  clients.push(client);
  await p3.goto(`${nodes[2].base}/dashboard`);
  await p3.fill('#login-password', PASSWORD);
  await p3.click('#login-submit');
  await p3.waitForSelector('#app', { state: 'visible' });
  await p3.click('#tab-operations');

  // Dismissing the dialog drains nothing.
  p3.once('dialog', (d) => d.dismiss());
  await p3.click('#drain-button');
  await sleep(500);
  assert.equal(await p3.isVisible('[data-testid=drain-result]'), false);
  assert.equal(nodes[2].exited, null);

  const errsBefore = errs3.slice(); // after the drain the page's requests fail, by design
  let asked = '';
  p3.once('dialog', (d) => {
    asked = d.message();
    d.accept();
  });
  await p3.click('#drain-button');
  await p3.waitForSelector('[data-testid=drain-result].ok', { timeout: SEE_MS });
  assert.match(asked, /n3/);
  assert.match(await p3.textContent('[data-testid=drain-result]'), /draining/);
  await p3.screenshot({ path: join(SCREENSHOTS, '5-drain.png'), fullPage: true });
  await ctx.close();
  assert.deepEqual(errsBefore.filter((e) => !expectedError(e)), [], 'console errors on n3\'s page before the drain');

  const closed = await Promise.race([client.closed, sleep(10000).then(() => null)]);
  assert.ok(closed, 'n3\'s client was not closed by the drain');
  assert.equal(closed.code, 4200);
  const exited = await Promise.race([nodes[2].exit, sleep(20000).then(() => null)]);
  assert.ok(exited, 'n3 did not exit after the drain');

  await page.click('#tab-overview');
  await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length === 2, null, { timeout: 10000 });
  const ov = await admin(nodes[0], '/admin/api/overview', PASSWORD);
  assert.deepEqual(ov.nodes.map((n) => n.id).sort(), ['n1', 'n2']);
});

test('log out: back to the login form, the browser\'s session cookie cleared', { timeout: 15000 }, async () => {
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible', timeout: SEE_MS });
  assert.equal(await page.isVisible('#app'), false);
  assert.equal(await page.textContent('[data-testid=live-status]'), 'signed out');
  const cookies = await page.context().cookies(nodes[0].base);
  assert.deepEqual(cookies.filter((c) => c.name.startsWith('raptor_admin_') && c.value), [], 'the session cookie was not cleared');
  await page.reload(); // the first overview is a 401 again (allowed below)
  await page.waitForSelector('#login-form', { state: 'visible', timeout: SEE_MS });
  assert.equal(await page.isVisible('#app'), false);
});

/**
 * The console errors the test provokes on purpose (Chromium logs every 4xx answer as "Failed
 * to load resource"): the page's first overview before signing in (and after logging out) and
 * the wrong password (401), and the publish to an invalid channel name (400).
 */
function expectedError(e) {
  if (e.kind !== 'console') return false;
  const path = e.url.replace(/^https?:\/\/[^/]+/, '');
  return (/status of 401/.test(e.text) && (path === '/admin/api/overview' || path === '/admin/api/login')) ||
    (/status of 400/.test(e.text) && path === '/admin/api/apps/1/publish');
}

test('no console errors and no page errors', () => {
  const unexpected = errors.filter((e) => !expectedError(e));
  assert.deepEqual(unexpected, []);
  const count = (re, path) => errors.filter((e) => re.test(e.text) && e.url.endsWith(path)).length;
  assert.ok(count(/401/, '/admin/api/overview') <= 2, `more than two 401s on the overview (first load, reload after logout): ${JSON.stringify(errors)}`);
  assert.ok(count(/401/, '/admin/api/login') <= 1, `more than one 401 on the login: ${JSON.stringify(errors)}`);
  assert.ok(count(/400/, '/admin/api/apps/1/publish') <= 1, `more than one refused publish: ${JSON.stringify(errors)}`);
});
