// pusher-js 8.6.0's HTTP fallback transports against Raptor, forced with
// `enabledTransports: ['xhr_streaming']` and then `['xhr_polling']` (shared/reference/http-fallback.md
// §1-§4): the unmodified Node build speaks SockJS-style framing over POSTs under /pusher.
//
// Contract (issue 13, docs/protocol.md "HTTP transports"): an HTTP session is a session like any
// other — subscribe/auth, events in order, client events to and from WebSocket clients, presence
// across transports (a session whose receiver is gone for `disconnect_delay_secs` leaves), a stream
// past pusher-js's 256 KiB re-open without loss, terminate (4009), SIGTERM (4200) and reconnect.
//
// Every xhr client here has `wsPort` pointing at a closed port and is checked to run on the forced
// transport, so no test can pass over a WebSocket by accident.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  authOptions,
  collect,
  connectClient,
  disconnectClient,
  recorder,
  serverSdk,
  sleep,
  startServer,
  subscribe,
  uniqueChannel,
  useServer,
  waitFrame,
  waitState,
} from './helpers.mjs';
import { closedPort } from './http_fallback.mjs';

// A short disconnect delay keeps the presence-leave tests quick; the stream and polling limits
// are the defaults.
const DISCONNECT_DELAY_S = 2;
const CONFIG = `
[limits.http_fallback]
disconnect_delay_secs = ${DISCONNECT_DELAY_S}

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
`;

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s), { config: CONFIG });

/** pusher-js options that can only work over `transport` (the WebSocket port is closed). */
async function xhrOptions(port, transport, extra = {}) {
  return {
    cluster: 'x',
    forceTLS: false,
    httpHost: '127.0.0.1',
    httpPort: port,
    wsHost: '127.0.0.1',
    wsPort: await closedPort(),
    enabledTransports: [transport],
    ...extra,
  };
}

/** The transport a connected pusher-js client runs on. */
function transportOf(client) {
  return client.connection.connection && client.connection.connection.transport.name;
}

/** Connect a pusher-js client over `transport`, check that it did, and record its state changes. */
async function connectXhr(transport, extra = {}, port = server.port) {
  const c = await connectClient(port, await xhrOptions(port, transport, extra), { timeoutMs: 10000 });
  pool.track(c);
  c.__states = [];
  c.connection.bind('state_change', ({ current }) => c.__states.push(current));
  assert.equal(transportOf(c), transport, 'pusher-js must run on the forced HTTP transport');
  assert.match(c.connection.socket_id, /^\d+\.\d+$/);
  return c;
}

async function connectWs(extra = {}) {
  const c = await pool.connect(server.port, extra);
  assert.equal(transportOf(c), 'ws');
  return c;
}

/** `n` events with data {i, pad} where pad makes each event about `size` characters of data. */
function payloads(n, size, fill = 'x') {
  return Array.from({ length: n }, (_, i) => ({ i, pad: fill.repeat(Math.max(0, Math.floor((size - 20) / fill.length))) }));
}

/** Publish in order (each trigger answered before the next one goes). */
async function publishAll(channel, event, datas) {
  for (const d of datas) {
    const res = await sdk.trigger(channel, event, d);
    assert.equal(res.status, 200);
  }
}

/** Publish in batches of 10 (`batch_events`), one channel, in order. */
async function publishBatched(channel, event, datas) {
  for (let i = 0; i < datas.length; i += 10) {
    const batch = datas.slice(i, i + 10).map((d) => ({ channel, name: event, data: d }));
    const res = await sdk.triggerBatch(batch);
    assert.equal(res.status, 200);
  }
}

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  describe(transport, () => {
    test('connects over the forced transport; public channel events from the HTTP API arrive in order', async () => {
      const c = await connectXhr(transport);
      const name = uniqueChannel('public-xhr');
      const ch = await subscribe(c, name);
      const got = collect(ch);
      const datas = Array.from({ length: 30 }, (_, i) => ({ n: i, text: `event ${i}` }));
      await publishAll(name, 'my-event', datas);
      const events = await got.waitFor(30);
      assert.deepEqual(events, datas.map((d) => ({ event: 'my-event', data: d })));
      // Nothing more than what was published (no duplicates after the last one).
      await sleep(300);
      assert.equal(got.events.length, 30);
      assert.equal(transportOf(c), transport);
      assert.deepEqual(c.__errors, []);
    });

    test('private channel: subscribed with an HMAC signature; a bad signature is refused', async () => {
      const c = await connectXhr(transport, authOptions(sdk));
      const name = uniqueChannel('private-xhr');
      const ch = await subscribe(c, name);
      const got = collect(ch);
      await publishAll(name, 'secret', [{ s: 1 }, { s: 2 }]);
      assert.deepEqual(await got.waitFor(2), [{ event: 'secret', data: { s: 1 } }, { event: 'secret', data: { s: 2 } }]);

      const bad = await connectXhr(transport, authOptions(serverSdk(server.port, { secret: 'wrong-secret' })));
      const badName = uniqueChannel('private-xhr');
      await assert.rejects(subscribe(bad, badName), /subscription_error/);
      assert.equal(bad.connection.state, 'connected');
    });

    test('presence: member_added / member_removed across an xhr and a WebSocket client, both ways', async () => {
      const name = uniqueChannel('presence-xhr');
      const wsUser = { user_id: `ws-${transport}`, user_info: { via: 'ws' } };
      const xhrUser = { user_id: `xhr-${transport}`, user_info: { via: transport } };

      const w = await connectWs(authOptions(sdk, { presence: wsUser }));
      const wch = await subscribe(w, name);
      const wAdded = recorder(wch, 'pusher:member_added');
      const wRemoved = recorder(wch, 'pusher:member_removed');

      const x = await connectXhr(transport, authOptions(sdk, { presence: xhrUser }));
      const xch = await subscribe(x, name);
      assert.equal(xch.members.count, 2);
      assert.deepEqual(xch.members.me, { id: xhrUser.user_id, info: xhrUser.user_info });
      assert.deepEqual(xch.members.get(wsUser.user_id), { id: wsUser.user_id, info: wsUser.user_info });
      assert.deepEqual(await wAdded.waitFor(1), [[{ id: xhrUser.user_id, info: xhrUser.user_info }]]);

      // A third member over WebSocket: the xhr client sees it join and leave.
      const third = { user_id: `third-${transport}`, user_info: {} };
      const xAdded = recorder(xch, 'pusher:member_added');
      const xRemoved = recorder(xch, 'pusher:member_removed');
      const t = await connectWs(authOptions(sdk, { presence: third }));
      await subscribe(t, name);
      assert.deepEqual(await xAdded.waitFor(1), [[{ id: third.user_id, info: {} }]]);
      await disconnectClient(t);
      assert.deepEqual(await xRemoved.waitFor(1), [[{ id: third.user_id, info: {} }]]);

      // The xhr client leaves with disconnect(): pusher-js only aborts its request (no close is
      // sent), so the server ends the session after disconnect_delay_secs without a receiver.
      const t0 = Date.now();
      await disconnectClient(x);
      // (The WebSocket client saw the third member leave first.)
      const removed = await wRemoved.waitFor(2, (DISCONNECT_DELAY_S + 4) * 1000);
      const took = Date.now() - t0;
      assert.deepEqual(removed, [
        [{ id: third.user_id, info: {} }],
        [{ id: xhrUser.user_id, info: xhrUser.user_info }],
      ]);
      assert.ok(took <= (DISCONNECT_DELAY_S + 4) * 1000, `member_removed after ${took} ms`);
      assert.equal(wch.members.count, 1);
      assert.deepEqual(wch.members.me, { id: wsUser.user_id, info: wsUser.user_info });
    });

    test('client events both ways between an xhr client and a WebSocket client', async () => {
      const name = uniqueChannel('private-chat');
      const x = await connectXhr(transport, authOptions(sdk));
      const w = await connectWs(authOptions(sdk));
      const xch = await subscribe(x, name);
      const wch = await subscribe(w, name);
      const atX = collect(xch);
      const atW = collect(wch);

      // pusher-js sends every message on its own concurrent POST (under Node, each on a new TCP
      // connection; http-fallback.md §2.2), so a burst of sends may reach the server in any order:
      // all three arrive, in some order...
      for (let i = 0; i < 3; i++) assert.equal(xch.trigger('client-from-xhr', { i }), true);
      const burst = await atW.waitFor(3);
      assert.deepEqual(burst.map((e) => e.event), ['client-from-xhr', 'client-from-xhr', 'client-from-xhr']);
      assert.deepEqual(burst.map((e) => e.data.i).sort(), [0, 1, 2]);
      // ... and sends that do not overlap arrive in the order sent.
      for (let i = 3; i < 6; i++) {
        assert.equal(xch.trigger('client-from-xhr', { i }), true);
        await atW.waitFor(i + 1);
      }
      assert.deepEqual(atW.events.slice(3).map((e) => e.data.i), [3, 4, 5]);
      for (let i = 0; i < 3; i++) assert.equal(wch.trigger('client-from-ws', { i }), true);
      assert.deepEqual(await atX.waitFor(3), [0, 1, 2].map((i) => ({ event: 'client-from-ws', data: { i } })));

      // Neither sender got its own events back: a barrier through the API reaches both after them.
      await publishAll(name, 'barrier', [{ b: 1 }]);
      assert.deepEqual(await atX.waitFor(4), [
        ...[0, 1, 2].map((i) => ({ event: 'client-from-ws', data: { i } })),
        { event: 'barrier', data: { b: 1 } },
      ]);
      assert.deepEqual((await atW.waitFor(7)).slice(6), [{ event: 'barrier', data: { b: 1 } }]);
    });

    test('client events on a presence channel carry the xhr sender\'s user_id', async () => {
      const name = uniqueChannel('presence-chat');
      const x = await connectXhr(transport, authOptions(sdk, { presence: { user_id: 'xhr-sender' } }));
      const w = await connectWs(authOptions(sdk, { presence: { user_id: 'ws-reader' } }));
      const xch = await subscribe(x, name);
      const wch = await subscribe(w, name);
      const r = recorder(wch, 'client-hello');
      xch.trigger('client-hello', { hi: true });
      assert.deepEqual(await r.waitFor(1), [[{ hi: true }, { user_id: 'xhr-sender' }]]);
    });

    test('past 256 KiB: 400 events of 1 KiB arrive complete and in order', async () => {
      const c = await connectXhr(transport);
      const name = uniqueChannel('big');
      const ch = await subscribe(c, name);
      const got = collect(ch);
      const datas = payloads(400, 1024);
      await publishBatched(name, 'chunk', datas);
      const events = await got.waitFor(400, 30000);
      assert.equal(events.length, 400);
      assert.deepEqual(events.map((e) => e.data.i), datas.map((d) => d.i));
      assert.deepEqual(events, datas.map((d) => ({ event: 'chunk', data: d })));
      // Still the same session (a stream re-open is not a reconnection) and still live.
      assert.deepEqual(c.__states, [], `state changes: ${JSON.stringify(c.__states)}`);
      await publishAll(name, 'after', [{ last: true }]);
      assert.deepEqual((await got.waitFor(401)).at(-1), { event: 'after', data: { last: true } });
      await sleep(300);
      assert.equal(got.events.length, 401);
    });

    test('past 256 KiB with non-ASCII data: 300 events of ~1 K characters arrive complete and in order', async () => {
      // pusher-js counts its 256 KiB in UTF-16 units, not bytes (http-fallback.md §2.4 point 3).
      const c = await connectXhr(transport);
      const name = uniqueChannel('big-utf8');
      const ch = await subscribe(c, name);
      const got = collect(ch);
      const datas = payloads(300, 1024, 'é✓😀ü');
      await publishBatched(name, 'chunk', datas);
      const events = await got.waitFor(300, 30000);
      assert.deepEqual(events, datas.map((d) => ({ event: 'chunk', data: d })));
      assert.deepEqual(c.__states, [], `state changes: ${JSON.stringify(c.__states)}`);
    });

    test('terminate_connections: the xhr client gets 4009 and does not reconnect', async () => {
      const id = `term-${transport}-${Date.now()}`;
      const c = await connectXhr(transport, authOptions(sdk, { user: { id } }));
      c.signin();
      await waitFrame(c, (f) => f.event === 'pusher:signin_success', 'signin_success');
      const res = await sdk.terminateUserConnections(id);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(await res.text()), {});
      assert.equal(await waitState(c, ['disconnected', 'failed', 'unavailable']), 'disconnected');
      const closeErrs = c.__errors.filter((e) => e.type === 'WebSocketError');
      assert.deepEqual(closeErrs.map((e) => e.error.data.code), [4009], JSON.stringify(c.__errors));
      await sleep(1500);
      assert.equal(c.connection.state, 'disconnected');
      assert.deepEqual(c.__states.slice(c.__states.indexOf('disconnected')), ['disconnected'], JSON.stringify(c.__states));
    });

    test('SIGTERM: the xhr client gets 4200, reconnects to the restarted server and resubscribes', async () => {
      // A server of its own, restarted on the same port.
      const cfg = join(tmpdir(), `raptor-interop-sigterm-${process.pid}-${transport}.toml`);
      writeFileSync(cfg, CONFIG);
      let first;
      let second;
      let c;
      try {
        first = await startServer({ extraArgs: ['--config', cfg] });
        const port = first.port;
        c = await connectXhr(transport, {}, port);
        const name = uniqueChannel('restart');
        const ch = await subscribe(c, name);
        const got = collect(ch);
        const firstSocket = c.connection.socket_id;

        await first.stop(); // SIGTERM, waits for the exit
        await eventuallyErr(c, 4200);
        // pusher-js retries at once on 4200; a retry that reaches the server while it drains is
        // closed with 4200 again, so there may be several, all 4200.
        const closeErrs = c.__errors.filter((e) => e.type === 'WebSocketError');
        assert.ok(closeErrs.length >= 1, JSON.stringify(c.__errors));
        assert.deepEqual([...new Set(closeErrs.map((e) => e.error.data.code))], [4200], JSON.stringify(c.__errors));
        assert.notEqual(c.connection.state, 'connected');

        second = await startServer({ extraArgs: ['--config', cfg], bind: `127.0.0.1:${port}` });
        assert.equal(second.port, port);
        assert.equal(await waitState(c, ['connected'], 30000), 'connected');
        assert.equal(transportOf(c), transport);
        assert.notEqual(c.connection.socket_id, firstSocket);
        // pusher-js subscribes again by itself; events of the new server arrive.
        const subs = () => c.__frames.filter((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === name).length;
        const deadline = Date.now() + 10000;
        while (subs() < 2 && Date.now() < deadline) await sleep(50);
        assert.equal(subs(), 2, 'pusher-js subscribes again after the reconnection');
        const res = await serverSdk(port).trigger(name, 'after-restart', { ok: 1 });
        assert.equal(res.status, 200);
        assert.deepEqual(await got.waitFor(1), [{ event: 'after-restart', data: { ok: 1 } }]);
      } finally {
        if (c) await disconnectClient(c);
        if (first) await first.stop();
        if (second) await second.stop();
        rmSync(cfg, { force: true });
      }
    });
  });
}

/** Wait until pusher-js reported a close error with `code` (bounded). */
async function eventuallyErr(c, code, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (c.__errors.some((e) => e.type === 'WebSocketError' && e.error && e.error.data && e.error.data.code === code)) return;
    await sleep(50);
  }
  throw new Error(`no close ${code} within ${timeoutMs} ms; errors: ${JSON.stringify(c.__errors)}; states: ${JSON.stringify(c.__states)}`);
}
