// pusher-js's WEB build and the browser's own EventSource in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core 1.65.1, as tests/dashboard does), on a page served
// from another origin (a tiny Node http server on another port) — so every request to Raptor is
// cross-origin and goes through CORS preflights (shared/reference/http-fallback.md §2.6).
//
// 1. The page's pusher-js has default transports and a WebSocket port nobody listens on: it falls
//    back by itself (ws, wss after 2 s, HTTP after 5 s; §1) to xhr_streaming against Raptor, and
//    events published through the HTTP API arrive in order.
// 2. An EventSource in the page against the SSE route receives events in order, and a second one
//    with `last_event_id` resumes a history channel with exactly the missed events.
//
// The app lists the page's origin in `allowed_origins`, so Raptor must echo it (not `*`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { APP_KEY, jsonBody, uniqueChannel, useServer } from './helpers.mjs';
import { HTTP_PATH, closedPort } from './http_fallback.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const PUSHER_WEB = resolve(HERE, '..', 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.js');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>raptor fallback</title></head>
<body>
<script src="/pusher.js"></script>
<script>
window.results = { states: [], events: [], errors: [], transport: null, subscribed: false, sse: [], sseErrors: 0 };
window.startPusher = function (cfg) {
  const p = new Pusher(cfg.key, {
    cluster: 'x', forceTLS: false, disableStats: true,
    wsHost: '127.0.0.1', wsPort: cfg.wsPort, wssPort: cfg.wsPort,
    httpHost: '127.0.0.1', httpPort: cfg.httpPort,
  });
  window.pusher = p;
  p.connection.bind('state_change', (s) => results.states.push(s.current));
  p.connection.bind('error', (e) => results.errors.push(JSON.stringify(e)));
  p.connection.bind('connected', () => {
    results.transport = p.connection.connection.transport.name;
    results.socketId = p.connection.socket_id;
  });
  const ch = p.subscribe(cfg.channel);
  ch.bind('pusher:subscription_succeeded', () => { results.subscribed = true; });
  ch.bind('my-event', (d) => results.events.push(d));
};
window.startSse = function (url, into) {
  const list = (results[into] = { events: [], opened: 0, errors: 0, lastId: null });
  const es = new EventSource(url);
  es.onopen = () => { list.opened += 1; };
  es.onerror = () => { list.errors += 1; };
  es.onmessage = (e) => { list.events.push({ id: e.lastEventId, data: JSON.parse(e.data), opened: list.opened }); list.lastId = e.lastEventId; };
  window['es_' + into] = es;
};
</script>
</body></html>`;

// The page's origin must be known before Raptor starts (allowed_origins).
const pusherJs = readFileSync(PUSHER_WEB);
const requests = [];
const pageServer = http.createServer((req, res) => {
  requests.push(req.url);
  if (req.url.startsWith('/pusher.js')) {
    res.writeHead(200, { 'Content-Type': 'application/javascript' });
    res.end(pusherJs);
  } else if (req.url === '/' || req.url.startsWith('/?')) {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => pageServer.listen(0, '127.0.0.1', r));
const PAGE_ORIGIN = `http://127.0.0.1:${pageServer.address().port}`;

const CONFIG = `
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
allowed_origins = ["${PAGE_ORIGIN}"]

[[apps.history]]
channels = "hist-*"
size = 1000
`;

let server;
let sdk;
useServer((s) => ({ server, sdk } = s), { config: CONFIG });

let browser;
before(async () => {
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});
after(async () => {
  if (browser) await browser.close();
  await new Promise((r) => pageServer.close(r));
});

/** page.waitForFunction, failing with what the page recorded so far. */
async function waitPage(page, fn, arg, timeout, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout });
  } catch (e) {
    const results = await page.evaluate(() => window.results).catch(() => null);
    throw new Error(`${what}: not within ${timeout} ms; page results: ${JSON.stringify(results).slice(0, 3000)}`);
  }
}

async function newPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.goto(`${PAGE_ORIGIN}/`);
  return { context, page, problems };
}

test('pusher-js (web build, default transports) falls back to xhr_streaming cross-origin; events arrive in order', async () => {
  const { context, page, problems } = await newPage();
  try {
    const channel = uniqueChannel('browser');
    const wsPort = await closedPort();
    const t0 = Date.now();
    await page.evaluate((cfg) => window.startPusher(cfg), { key: APP_KEY, wsPort, httpPort: server.port, channel });
    // ws fails at once, wss is tried after 2 s, HTTP after 5 s: allow 30 s.
    await waitPage(page, () => window.results.subscribed, null, 30000, 'subscribed over the fallback');
    const took = Date.now() - t0;
    const r1 = await page.evaluate(() => window.results);
    assert.equal(r1.transport, 'xhr_streaming', JSON.stringify(r1));
    assert.match(r1.socketId, /^\d+\.\d+$/);
    assert.ok(took >= 4000, `fell back after only ${took} ms: the WebSocket did not fail?`);

    const N = 50;
    for (let i = 0; i < N; i++) assert.equal((await sdk.trigger(channel, 'my-event', { i, text: `héllo ${i}` })).status, 200);
    await waitPage(page, (n) => window.results.events.length >= n, N, 15000, `${N} events`);
    const r2 = await page.evaluate(() => window.results);
    assert.deepEqual(r2.events, Array.from({ length: N }, (_, i) => ({ i, text: `héllo ${i}` })));
    assert.equal(r2.transport, 'xhr_streaming');
    assert.deepEqual(r2.states.slice(-1), ['connected'], JSON.stringify(r2.states));
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('EventSource in the page: events in order; a second EventSource with last_event_id resumes a history channel', async () => {
  const { context, page, problems } = await newPage();
  try {
    const pub = uniqueChannel('browser-sse');
    const hist = uniqueChannel('hist-browser');
    const base = `http://127.0.0.1:${server.port}${HTTP_PATH}/app/${APP_KEY}/sse`;
    const url1 = `${base}?channel=${encodeURIComponent(pub)}&channel=${encodeURIComponent(hist)}`;
    await page.evaluate((u) => window.startSse(u, 'first'), url1);
    await waitPage(
      page,
      (h) => window.results.first && window.results.first.events.some((e) => e.data.event === 'raptor:recovery' && e.data.channel === h),
      hist,
      10000,
      'raptor:recovery on the first EventSource',
    );
    for (let i = 0; i < 10; i++) {
      assert.equal((await sdk.trigger(i % 2 ? hist : pub, 'my-event', { i })).status, 200);
    }
    await waitPage(page, () => window.results.first.events.filter((e) => e.data.event === 'my-event').length >= 10, null, 10000, '10 events');
    const r1 = await page.evaluate(() => window.results.first);
    assert.equal(r1.events[0].data.event, 'pusher:connection_established');
    const app1 = r1.events.filter((e) => e.data.event === 'my-event');
    assert.deepEqual(app1.map((e) => ({ channel: e.data.channel, data: e.data.data })),
      Array.from({ length: 10 }, (_, i) => ({ channel: i % 2 ? hist : pub, data: JSON.stringify({ i }) })));
    assert.ok(r1.lastId, 'events carry an id once a channel keeps history');

    // Close it, publish while away, resume with the last id seen.
    await page.evaluate(() => window.es_first.close());
    for (let i = 10; i < 16; i++) assert.equal((await sdk.trigger(hist, 'my-event', { i })).status, 200);
    const url2 = `${url1}&last_event_id=${encodeURIComponent(r1.lastId)}`;
    await page.evaluate((u) => window.startSse(u, 'second'), url2);
    await waitPage(page, () => window.results.second && window.results.second.events.filter((e) => e.data.event === 'my-event').length >= 6, null, 10000, '6 resumed events');
    await page.waitForTimeout(300);
    const r2 = await page.evaluate(() => window.results.second);
    const app2 = r2.events.filter((e) => e.data.event === 'my-event');
    assert.deepEqual(app2.map((e) => ({ channel: e.data.channel, data: e.data.data })),
      Array.from({ length: 6 }, (_, k) => ({ channel: hist, data: JSON.stringify({ i: 10 + k }) })));
    const rec = r2.events.find((e) => e.data.event === 'raptor:recovery' && e.data.channel === hist);
    assert.ok(rec, JSON.stringify(r2.events));
    assert.equal(JSON.parse(rec.data.data).recovered, true);
    assert.equal(JSON.parse(rec.data.data).replayed, 6);
    assert.equal(r2.errors, 0);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('EventSource reconnects by itself after the server ends its stream and resumes with the Last-Event-ID header', async () => {
  // The stream is ended by terminate_connections (the token signs the session in as `user`);
  // the browser reconnects on its own (after its default ~3 s retry) with the same URL and the
  // last id it saw as the Last-Event-ID header.
  const { context, page, problems } = await newPage();
  try {
    const hist = uniqueChannel('hist-es');
    const user = `es-${Date.now()}`;
    const res = await sdk.post({ path: '/tokens', body: { sub: user, read: ['hist-*'] } });
    const { token } = await jsonBody(res);
    const url = `http://127.0.0.1:${server.port}${HTTP_PATH}/app/${APP_KEY}/sse?channel=${encodeURIComponent(hist)}&token=${encodeURIComponent(token)}`;
    await page.evaluate((u) => window.startSse(u, 'auto'), url);
    await waitPage(page, (h) => window.results.auto && window.results.auto.events.some((e) => e.data.event === 'raptor:recovery' && e.data.channel === h), hist, 10000, 'recovery event');
    for (let i = 0; i < 4; i++) assert.equal((await sdk.trigger(hist, 'my-event', { i })).status, 200);
    await waitPage(page, () => window.results.auto.events.filter((e) => e.data.event === 'my-event').length >= 4, null, 10000, '4 events');

    assert.equal((await sdk.terminateUserConnections(user)).status, 200);
    await waitPage(page, () => window.results.auto.events.some((e) => e.data.event === 'pusher:error'), null, 5000, 'pusher:error 4009');
    // Published while the browser is away (it waits ~3 s before reconnecting).
    for (let i = 4; i < 9; i++) assert.equal((await sdk.trigger(hist, 'my-event', { i })).status, 200);
    await waitPage(page, () => window.results.auto.events.filter((e) => e.data.event === 'my-event').length >= 9, null, 15000, 'the 5 missed events after the automatic reconnection');
    await page.waitForTimeout(300);
    const r = await page.evaluate(() => window.results.auto);
    const appEvents = r.events.filter((e) => e.data.event === 'my-event');
    assert.deepEqual(appEvents.map((e) => JSON.parse(e.data.data).i), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    // The last five came on the second connection, after its recovery said so.
    assert.ok(r.opened >= 2, JSON.stringify(r));
    assert.ok(appEvents.slice(4).every((e) => e.opened === 2), JSON.stringify(appEvents));
    const recs = r.events.filter((e) => e.data.event === 'raptor:recovery').map((e) => JSON.parse(e.data.data));
    assert.equal(recs.length, 2, JSON.stringify(recs));
    assert.equal(recs[1].was_recovering, true);
    assert.equal(recs[1].recovered, true);
    assert.equal(recs[1].replayed, 5);
    const errs = r.events.filter((e) => e.data.event === 'pusher:error').map((e) => e.data.data.code);
    assert.ok(errs.length >= 1 && errs.every((c) => c === 4009), JSON.stringify(errs));
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});
