// The xhr routes pusher-js's HTTP fallback uses, driven by hand (Node's fetch/http) to check the
// framing and the answers to bad input exactly (shared/reference/http-fallback.md §2, issue 13):
// malformed send bodies (400), unknown sessions (404), oversize POSTs (413), too many sessions
// (4100 as `o` + `a[pusher:error]` + `c`), a stalled poller (the session ends after
// `disconnect_delay_secs`), refused keys (4001), and CORS (preflight, allowed origins, 403).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { channelInfo, sleep, startServer, uniqueChannel, useServer } from './helpers.mjs';
import {
  eventually,
  json,
  messagesOf,
  openStream,
  poll,
  post,
  send,
  sessionId,
  xhrUrl,
} from './http_fallback.mjs';

const DISCONNECT_DELAY_S = 2;
const ALLOWED = 'http://allowed.example:8080';
const CONFIG = `
[limits]
max_http_body_bytes = 65536

[limits.http_fallback]
disconnect_delay_secs = ${DISCONNECT_DELAY_S}

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"

[[apps]]
id = "2"
key = "app-key-2"
secret = "app-secret-2"
allowed_origins = ["${ALLOWED}"]
`;

let server;
let sdk;
useServer((s) => ({ server, sdk } = s), { config: CONFIG });

/** Open a session with one poll; returns its socket id (the poll must be o + connection_established). */
async function openSession(session, opts = {}) {
  const r = await poll(server.port, session, opts);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.frames.map((f) => f.type), ['o', 'a'], r.text);
  const [est] = messagesOf(r.frames);
  assert.equal(est.event, 'pusher:connection_established');
  const data = JSON.parse(est.data);
  return data.socket_id;
}

describe('framing', () => {
  test('first poll: `o` then connection_established with socket_id and activity_timeout', async () => {
    const r = await poll(server.port, sessionId());
    assert.equal(r.status, 200);
    assert.equal(r.text.split('\n')[0], 'o');
    assert.ok(r.text.endsWith('\n'), JSON.stringify(r.text));
    assert.deepEqual(r.frames.map((f) => f.type), ['o', 'a']);
    const msgs = messagesOf(r.frames);
    assert.equal(msgs.length, 1);
    assert.deepEqual(Object.keys(msgs[0]).sort(), ['data', 'event']);
    assert.equal(msgs[0].event, 'pusher:connection_established');
    const data = JSON.parse(msgs[0].data); // a JSON string, as over WebSocket
    assert.match(data.socket_id, /^\d+\.\d+$/);
    assert.equal(typeof data.activity_timeout, 'number');
    assert.ok(data.activity_timeout > 0);
  });

  test('a session lives across polls: subscribe via xhr_send, events come in later polls, no second `o`', async () => {
    const session = sessionId();
    await openSession(session);
    const name = uniqueChannel('raw');
    const s = await send(server.port, session, [{ event: 'pusher:subscribe', data: { auth: '', channel: name } }]);
    assert.equal(s.status, 204);
    assert.equal(s.text, '');
    const r1 = await poll(server.port, session);
    assert.equal(r1.status, 200);
    assert.ok(!r1.frames.some((f) => f.type === 'o'), r1.text);
    assert.deepEqual(messagesOf(r1.frames), [
      { event: 'pusher_internal:subscription_succeeded', channel: name, data: '{}' },
    ]);
    const res = await sdk.trigger(name, 'ev', { k: 'v' });
    assert.equal(res.status, 200);
    const r2 = await poll(server.port, session);
    assert.deepEqual(messagesOf(r2.frames), [{ event: 'ev', channel: name, data: '{"k":"v"}' }]);
    // pusher:ping over xhr_send is answered with pusher:pong on the receiver.
    assert.equal((await send(server.port, session, [{ event: 'pusher:ping', data: {} }])).status, 204);
    const r3 = await poll(server.port, session);
    assert.deepEqual(messagesOf(r3.frames), [{ event: 'pusher:pong', data: '{}' }]);
    // `[]` (pusher-js's heartbeat) is accepted and does nothing.
    assert.equal((await send(server.port, session, [])).status, 204);
  });

  test('streaming: `o` + connection_established first, events pushed on the open response', async () => {
    const session = sessionId();
    const st = openStream(server.port, session);
    try {
      const head = await st.ready;
      assert.equal(head.status, 200);
      await st.waitFor((fr) => fr.some((f) => f.type === 'a'), 'connection_established');
      const first = st.items().filter((f) => f.type !== 'h'); // a prelude of `h` is allowed
      assert.equal(first[0].type, 'o');
      assert.equal(messagesOf(first)[0].event, 'pusher:connection_established');
      const name = uniqueChannel('stream-raw');
      assert.equal((await send(server.port, session, [{ event: 'pusher:subscribe', data: { auth: '', channel: name } }])).status, 204);
      await st.waitFor((fr) => messagesOf(fr).some((m) => m.event === 'pusher_internal:subscription_succeeded'), 'subscription_succeeded');
      for (let i = 0; i < 3; i++) assert.equal((await sdk.trigger(name, 'ev', { i })).status, 200);
      const frames = await st.waitFor((fr) => messagesOf(fr).filter((m) => m.event === 'ev').length >= 3, '3 events');
      assert.deepEqual(messagesOf(frames).filter((m) => m.event === 'ev'), [0, 1, 2].map((i) => ({ event: 'ev', channel: name, data: JSON.stringify({ i }) })));
      assert.equal(st.state.ended, false, 'a stream is not ended by the server');
      assert.equal(st.items().filter((f) => f.type === 'o').length, 1);
    } finally {
      st.close();
    }
  });

  test('an unknown app key is refused as o + a[pusher:error 4001] + c[4001,...]', async () => {
    const r = await poll(server.port, sessionId(), { key: 'no-such-key' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.frames.map((f) => f.type), ['o', 'a', 'c'], r.text);
    const [err] = messagesOf(r.frames);
    assert.equal(err.event, 'pusher:error');
    assert.deepEqual(err, { event: 'pusher:error', data: { code: 4001, message: 'App key not in this cluster' } });
    const c = r.frames[2];
    assert.equal(c.raw, 'c[4001,"App key not in this cluster"]');
  });
});

describe('bad input', () => {
  test('malformed xhr_send bodies: 400 with a JSON error, the session stays', async () => {
    const session = sessionId();
    await openSession(session);
    for (const body of ['not json', '{"event":"pusher:ping"}', '[1]', '[["x"]]', '']) {
      const r = await post(xhrUrl(server.port, session, 'xhr_send'), body);
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}: ${r.status} ${r.text}`);
      assert.deepEqual(json(r), { error: 'the body must be a JSON array of strings (Pusher messages)' });
      assert.match(r.headers.get('content-type'), /^application\/json/);
    }
    // Still alive: a good send works.
    assert.equal((await send(server.port, session, [])).status, 204);
  });

  test('xhr_send to an unknown session: 404', async () => {
    const r = await send(server.port, sessionId(), [{ event: 'pusher:ping', data: {} }]);
    assert.equal(r.status, 404, r.text);
    assert.deepEqual(json(r), { error: 'no such session' });
  });

  test('a POST body over limits.max_http_body_bytes: 413 {"error":"request body too large"}', async () => {
    const session = sessionId();
    await openSession(session);
    const big = JSON.stringify([JSON.stringify({ event: 'client-x', channel: 'private-a', data: 'x'.repeat(70000) })]);
    const r = await post(xhrUrl(server.port, session, 'xhr_send'), big);
    assert.equal(r.status, 413);
    assert.deepEqual(json(r), { error: 'request body too large' });
  });

  test('a stalled poller: the session ends after disconnect_delay_secs (its channel empties, sends get 404)', async () => {
    const session = sessionId();
    await openSession(session);
    const name = uniqueChannel('stalled');
    assert.equal((await send(server.port, session, [{ event: 'pusher:subscribe', data: { auth: '', channel: name } }])).status, 204);
    await eventually(async () => (await channelInfo(sdk, name)).occupied === true, 'channel occupied');
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) assert.equal((await sdk.trigger(name, 'ev', { i })).status, 200);
    // Never polled again: the channel is vacated within the delay (+ margin).
    await eventually(
      async () => (await channelInfo(sdk, name)).occupied === false,
      'channel vacated',
      (DISCONNECT_DELAY_S + 4) * 1000,
      100,
    );
    const took = Date.now() - t0;
    assert.ok(took >= (DISCONNECT_DELAY_S - 1) * 1000, `the session ended after only ${took} ms`);
    const r = await send(server.port, session, []);
    assert.equal(r.status, 404, r.text);
    // A poll on the ended session opens a new one (`o` again), not the old queue.
    const again = await poll(server.port, session);
    assert.equal(again.status, 200);
    assert.ok(!messagesOf(again.frames).some((m) => m.event === 'ev'), again.text);
  });
});

describe('CORS', () => {
  test('preflight of an app without allowed_origins: 204, ACAO *, methods and headers', async () => {
    const res = await fetch(xhrUrl(server.port, sessionId(), 'xhr_streaming'), {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://page.example:3000',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type',
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const methods = res.headers.get('access-control-allow-methods').split(',').map((m) => m.trim().toUpperCase());
    assert.ok(methods.includes('POST') && methods.includes('OPTIONS'), methods.join());
    assert.equal(res.headers.get('access-control-allow-headers'), 'Content-Type, Last-Event-ID, X-Requested-With');
    // ... and on the POST itself.
    const r = await poll(server.port, sessionId(), { headers: { Origin: 'http://page.example:3000' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
  });

  test('an app with allowed_origins: a listed Origin is echoed, another gets 403', async () => {
    const pre = await fetch(xhrUrl(server.port, sessionId(), 'xhr', { key: 'app-key-2' }), {
      method: 'OPTIONS',
      headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), ALLOWED);

    const ok = await poll(server.port, sessionId(), { key: 'app-key-2', headers: { Origin: ALLOWED } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED);
    assert.equal(messagesOf(ok.frames)[0].event, 'pusher:connection_established');

    const bad = await poll(server.port, sessionId(), { key: 'app-key-2', headers: { Origin: 'http://evil.example' } });
    assert.equal(bad.status, 403, bad.text);
    assert.notEqual(bad.headers.get('access-control-allow-origin'), 'http://evil.example');
    assert.notEqual(bad.headers.get('access-control-allow-origin'), '*');
  });
});

describe('max_sessions', () => {
  const cfg = join(tmpdir(), `raptor-interop-maxsess-${process.pid}.toml`);
  let small;
  before(async () => {
    writeFileSync(cfg, `
[limits.http_fallback]
max_sessions = 3
disconnect_delay_secs = ${DISCONNECT_DELAY_S}

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
`);
    small = await startServer({ extraArgs: ['--config', cfg] });
  });
  after(async () => {
    if (small) await small.stop();
    rmSync(cfg, { force: true });
  });

  test('the 4th session gets o + a[pusher:error 4100] + c[4100,...]; a slot frees once a session ends', async () => {
    const sessions = [sessionId(), sessionId(), sessionId()];
    for (const s of sessions) {
      const r = await poll(small.port, s);
      assert.equal(r.status, 200);
      assert.equal(messagesOf(r.frames)[0].event, 'pusher:connection_established', r.text);
    }
    // Keep them alive (each with a send; no receiver needed for disconnect_delay_secs).
    const r4 = await poll(small.port, sessionId());
    assert.equal(r4.status, 200);
    assert.deepEqual(r4.frames.map((f) => f.type), ['o', 'a', 'c'], r4.text);
    const [err] = messagesOf(r4.frames);
    assert.equal(err.event, 'pusher:error');
    assert.equal(err.data.code, 4100);
    assert.equal(typeof err.data.message, 'string');
    assert.equal(r4.frames[2].code, 4100);
    assert.equal(r4.frames[2].reason, err.data.message);
    // The three were never polled again: they end, and a new session is admitted.
    await sleep((DISCONNECT_DELAY_S + 2) * 1000);
    for (const s of sessions) assert.equal((await send(small.port, s, [])).status, 404);
    const r5 = await poll(small.port, sessionId());
    assert.equal(messagesOf(r5.frames)[0].event, 'pusher:connection_established', r5.text);
  });
});
