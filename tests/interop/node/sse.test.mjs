// Server-Sent Events (issue 13): GET /pusher/app/{key}/sse?channel=a&channel=b[&token=T][&last_event_id=ID],
// read with a plain node:http client and parsed by hand (no EventSource library).
//
// Contract: `text/event-stream`; each Pusher event is one SSE event whose `data:` is the event JSON
// exactly as a WebSocket gets it (connection_established first, then subscription_succeeded per
// channel, `raptor:recovery` for channels with history); an `id:` line once a subscribed channel keeps
// history; `Last-Event-ID` (header, as EventSource sends it) or `last_event_id` (query) resumes the
// history channels with exactly the missed events; private channels need `token=` with a read grant
// (docs/tokens.md); heartbeats are comment lines; SIGTERM ends the stream with a final
// pusher:error 4200.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { jsonBody, serverSdk, sleep, startServer, uniqueChannel, useServer } from './helpers.mjs';
import { dataEvents, openSse } from './http_fallback.mjs';

const CONFIG = `
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"

[[apps.history]]
channels = "hist-*"
size = 1000
`;

let server;
let sdk;
useServer((s) => ({ server, sdk } = s), { config: CONFIG });

const streams = [];
function sse(opts, port = server.port) {
  const s = openSse(port, opts);
  streams.push(s);
  return s;
}
after(() => {
  for (const s of streams) s.close();
});

/** The Pusher events (parsed data) of an SSE stream's complete events. */
function pusherEvents(s) {
  return dataEvents(s.items()).map((e) => e.data);
}

/** Wait until the stream holds at least `n` Pusher events with `pred`; returns all data events. */
function waitEvents(s, pred, n, what, timeoutMs) {
  return s.waitFor((blocks) => dataEvents(blocks).filter((e) => e.data && pred(e.data)).length >= n, what, timeoutMs)
    .then((blocks) => dataEvents(blocks));
}

const isApp = (name) => (d) => d.channel === name && !d.event.startsWith('pusher') && !d.event.startsWith('raptor:');

async function mintToken(claims) {
  const res = await sdk.post({ path: '/tokens', body: claims });
  assert.equal(res.status, 200);
  return (await jsonBody(res)).token;
}

test('public channels: text/event-stream, connection_established, subscription_succeeded, events in order', async () => {
  const a = uniqueChannel('sse-a');
  const b = `${uniqueChannel('sse-b')},with,commas`;
  const s = sse({ channels: [a, b] });
  const head = await s.ready;
  assert.equal(head.status, 200);
  assert.match(head.headers['content-type'], /^text\/event-stream/);
  await waitEvents(s, (d) => d.event === 'pusher_internal:subscription_succeeded', 2, 'two subscription_succeeded');

  const published = [];
  for (let i = 0; i < 30; i++) {
    const ch = i % 3 === 0 ? b : a;
    assert.equal((await sdk.trigger(ch, 'my-event', { i })).status, 200);
    published.push({ event: 'my-event', channel: ch, data: JSON.stringify({ i }) });
  }
  const all = await waitEvents(s, (d) => d.event === 'my-event', 30, '30 events');
  const datas = all.map((e) => e.data);
  // The first event is connection_established (data a JSON string with socket_id, as over WebSocket).
  assert.equal(datas[0].event, 'pusher:connection_established');
  assert.match(JSON.parse(datas[0].data).socket_id, /^\d+\.\d+$/);
  // Then the two subscriptions, in some order.
  const subs = datas.slice(1, 3);
  assert.deepEqual(subs.map((d) => d.event), ['pusher_internal:subscription_succeeded', 'pusher_internal:subscription_succeeded']);
  assert.deepEqual(subs.map((d) => d.channel).sort(), [a, b].sort());
  // Then exactly the published events, in order, each exactly as a WebSocket frame.
  assert.deepEqual(datas.slice(3), published);
  // No channel keeps history: no ids.
  assert.ok(all.every((e) => e.id === undefined), JSON.stringify(all.filter((e) => e.id !== undefined)));
  // Every data event is a single `data:` line.
  assert.ok(all.every((e) => e.fields.filter((f) => f === 'data').length === 1));
});

for (const how of ['Last-Event-ID header', 'last_event_id query']) {
  test(`history channel: resume with the ${how} gives exactly the missed events, in order`, async () => {
    const h = uniqueChannel('hist-sse');
    const pub = uniqueChannel('sse-plain');
    const s1 = sse({ channels: [h, pub] });
    await waitEvents(s1, (d) => d.event === 'raptor:recovery' && d.channel === h, 1, 'raptor:recovery');
    await waitEvents(s1, (d) => d.event === 'pusher_internal:subscription_succeeded' && d.channel === pub, 1, 'sub pub');
    const N = 5;
    const M = 7;
    for (let i = 0; i < N; i++) assert.equal((await sdk.trigger(h, 'msg', { i })).status, 200);
    const seen = (await waitEvents(s1, isApp(h), N, `${N} events`)).filter((e) => isApp(h)(e.data));
    assert.deepEqual(seen.map((e) => e.data.data), [0, 1, 2, 3, 4].map((i) => JSON.stringify({ i })));
    // Each carries an id (a cursor), all distinct.
    assert.ok(seen.every((e) => typeof e.id === 'string' && e.id.length > 0), JSON.stringify(seen));
    assert.equal(new Set(seen.map((e) => e.id)).size, N);
    const lastId = seen.at(-1).id;
    s1.close();
    await sleep(100);

    for (let i = N; i < N + M; i++) assert.equal((await sdk.trigger(h, 'msg', { i })).status, 200);
    // Events on a channel without history are not replayed (and do not disturb the cursor).
    assert.equal((await sdk.trigger(pub, 'lost', { x: 1 })).status, 200);

    const s2 = sse(how.startsWith('Last') ? { channels: [h, pub], lastEventIdHeader: lastId } : { channels: [h, pub], lastEventId: lastId });
    const head = await s2.ready;
    assert.equal(head.status, 200);
    await waitEvents(s2, isApp(h), M, `${M} replayed events`);
    // One live event after the replay.
    assert.equal((await sdk.trigger(h, 'msg', { i: 99 })).status, 200);
    const all = await waitEvents(s2, isApp(h), M + 1, 'replay + live');
    const datas = all.map((e) => e.data);
    assert.equal(datas[0].event, 'pusher:connection_established');
    const rec = datas.find((d) => d.event === 'raptor:recovery' && d.channel === h);
    assert.ok(rec, JSON.stringify(datas));
    const recData = JSON.parse(rec.data);
    assert.equal(recData.was_recovering, true);
    assert.equal(recData.recovered, true);
    assert.equal(recData.replayed, M);
    const appEvents = all.filter((e) => isApp(h)(e.data));
    assert.deepEqual(appEvents.map((e) => JSON.parse(e.data.data).i), [5, 6, 7, 8, 9, 10, 11, 99]);
    // The recovery comes before the replayed events; nothing of the first connection again.
    assert.ok(datas.indexOf(rec) < datas.indexOf(appEvents[0].data));
    assert.ok(!datas.some((d) => d.event === 'lost'), JSON.stringify(datas));
    // Ids keep increasing (new cursors), none equal to one seen before.
    assert.ok(appEvents.every((e) => typeof e.id === 'string' && !seen.some((x) => x.id === e.id)));
    // The exact frames, as a WebSocket gets them (with their offsets, consecutive).
    const offsets = appEvents.map((e) => e.data.offset);
    assert.ok(offsets.every((o) => Number.isInteger(o)), JSON.stringify(offsets));
    assert.deepEqual(offsets.slice(0, M), Array.from({ length: M }, (_, k) => offsets[0] + k));
    assert.deepEqual(appEvents.map((e) => ({ event: e.data.event, channel: e.data.channel })),
      Array.from({ length: M + 1 }, () => ({ event: 'msg', channel: h })));
    s2.close();
  });
}

test('private channel: refused without a token (JSON error), accepted with a minted read token', async () => {
  const name = uniqueChannel('private-sse');
  const s = sse({ channels: [name] });
  const head = await s.ready;
  assert.equal(head.status, 401);
  assert.match(head.headers['content-type'], /^application\/json/);
  await s.ended;
  assert.deepEqual(JSON.parse(s.text), {
    error: 'private and presence channels need ?token= (an access token with a read grant, docs/tokens.md)',
  });

  const token = await mintToken({ sub: 'sse-reader', read: ['private-sse-*'] });
  const ok = sse({ channels: [name], token });
  assert.equal((await ok.ready).status, 200);
  await waitEvents(ok, (d) => d.event === 'pusher_internal:subscription_succeeded' && d.channel === name, 1, 'private sub');
  assert.equal((await sdk.trigger(name, 'secret', { s: 1 })).status, 200);
  const all = await waitEvents(ok, isApp(name), 1, 'private event');
  assert.deepEqual(all.filter((e) => isApp(name)(e.data)).map((e) => e.data), [{ event: 'secret', channel: name, data: '{"s":1}' }]);

  // A token without a grant for the channel: the stream opens (its other channels work) but that
  // channel's subscription fails as it would over a WebSocket, and none of its events arrive.
  const other = await mintToken({ sub: 'sse-reader', read: ['news'] });
  const news = uniqueChannel('news');
  const no = sse({ channels: [name, news], token: other });
  assert.equal((await no.ready).status, 200);
  await waitEvents(no, (d) => d.event === 'pusher_internal:subscription_succeeded' && d.channel === news, 1, 'public sub');
  const err = (await waitEvents(no, (d) => d.event === 'pusher:subscription_error', 1, 'subscription_error'))
    .map((e) => e.data).find((d) => d.event === 'pusher:subscription_error');
  assert.equal(err.channel, name);
  assert.deepEqual(JSON.parse(err.data), { type: 'TokenError', error: "the session's token grants no read of this channel", status: 403 });
  assert.equal((await sdk.trigger(name, 'secret', { s: 2 })).status, 200);
  assert.equal((await sdk.trigger(news, 'open', { n: 1 })).status, 200);
  await waitEvents(no, isApp(news), 1, 'public event');
  assert.ok(!pusherEvents(no).some((d) => d.event === 'secret'), JSON.stringify(pusherEvents(no)));
  assert.ok(!pusherEvents(no).some((d) => d.event === 'pusher_internal:subscription_succeeded' && d.channel === name));
});

describe('own server: heartbeats and SIGTERM', () => {
  const cfg = join(tmpdir(), `raptor-interop-sse-${process.pid}.toml`);
  let own;
  before(async () => {
    writeFileSync(cfg, `
[limits.http_fallback]
heartbeat_secs = 1

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
`);
    own = await startServer({ extraArgs: ['--config', cfg] });
  });
  after(async () => {
    if (own) await own.stop();
    rmSync(cfg, { force: true });
  });

  test('a silent stream gets heartbeat comment lines; SIGTERM ends it with pusher:error 4200', async () => {
    const name = uniqueChannel('sse-hb');
    const s = sse({ channels: [name] }, own.port);
    assert.equal((await s.ready).status, 200);
    await waitEvents(s, (d) => d.event === 'pusher_internal:subscription_succeeded', 1, 'sub');
    await s.waitFor((blocks) => blocks.some((b) => b.comments.length > 0 && b.rawData === undefined) || /\n:[^\n]*\n/.test(s.text), 'a heartbeat comment', 3500);
    assert.equal((await serverSdk(own.port).trigger(name, 'ev', { a: 1 })).status, 200);
    await waitEvents(s, isApp(name), 1, 'event');

    const stopping = own.stop();
    await Promise.race([s.ended, sleep(8000)]);
    await stopping;
    assert.equal(s.state.ended, true, 'the response ends');
    const last = pusherEvents(s).at(-1);
    assert.equal(last.event, 'pusher:error');
    assert.equal(last.data.code, 4200);
    assert.equal(typeof last.data.message, 'string');
  });
});
