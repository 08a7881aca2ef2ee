// Public channels: pusher-js 8.6.0 subscribers, events published with the npm `pusher` 5.3.4 SDK.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  appFrames,
  collect,
  sleep,
  subscribe,
  uniqueChannel,
  useServer,
} from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

describe('pusher-js connects and subscribes to public channels', () => {
  test('connection_established gives a socket_id of the form \\d+.\\d+', async () => {
    const client = await pool.connect(server.port);
    assert.equal(client.connection.state, 'connected');
    assert.match(client.connection.socket_id, /^\d+\.\d+$/);
  });

  test('two connections get different socket_ids', async () => {
    const a = await pool.connect(server.port);
    const b = await pool.connect(server.port);
    assert.notEqual(a.connection.socket_id, b.connection.socket_id);
  });

  test('subscribe to a public channel succeeds', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('pub');
    const channel = await subscribe(client, name);
    assert.equal(channel.subscribed, true);
    // pusher_internal:subscription_succeeded must be scoped to the channel.
    const succeeded = client.__frames.filter((f) => f.event === 'pusher_internal:subscription_succeeded');
    assert.equal(succeeded.length, 1);
    assert.equal(succeeded[0].channel, name);
  });
});

describe('events triggered with the npm pusher SDK reach pusher-js', () => {
  test('trigger(): object data arrives with exact event name, channel and data', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('pub');
    const channel = await subscribe(client, name);
    const got = collect(channel);

    const res = await sdk.trigger(name, 'my-event', { message: 'hello', n: 1, nested: { ok: true } });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(await res.text()), {});

    const events = await got.waitFor(1);
    assert.deepEqual(events, [{ event: 'my-event', data: { message: 'hello', n: 1, nested: { ok: true } } }]);
    assert.deepEqual(appFrames(client), [
      { event: 'my-event', channel: name, data: { message: 'hello', n: 1, nested: { ok: true } } },
    ]);
  });

  test('trigger(): string data is relayed as the same string', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('pub');
    const channel = await subscribe(client, name);
    const got = collect(channel);

    // Not valid JSON, so pusher-js cannot parse it and hands the raw string through.
    const res = await sdk.trigger(name, 'string-event', 'raw string with "quotes" and ünïcödé');
    assert.equal(res.status, 200);

    const events = await got.waitFor(1);
    assert.deepEqual(events, [{ event: 'string-event', data: 'raw string with "quotes" and ünïcödé' }]);
  });

  test('trigger(): JSON text passed as a string arrives as that JSON', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('pub');
    const channel = await subscribe(client, name);
    const got = collect(channel);

    // An object already encoded as a string (with Python-style spacing) by the caller.
    await sdk.trigger(name, 'encoded-event', '{"message": "hello", "list": [1, 2, 3]}');
    const events = await got.waitFor(1);
    assert.deepEqual(events, [{ event: 'encoded-event', data: { message: 'hello', list: [1, 2, 3] } }]);
  });

  test('trigger() to multiple channels delivers once per subscribed channel', async () => {
    const a = await pool.connect(server.port);
    const b = await pool.connect(server.port);
    const c1 = uniqueChannel('multi');
    const c2 = uniqueChannel('multi');
    const c3 = uniqueChannel('multi'); // nobody subscribed
    const a1 = collect(await subscribe(a, c1));
    const a2 = collect(await subscribe(a, c2));
    const b2 = collect(await subscribe(b, c2));

    const res = await sdk.trigger([c1, c2, c3], 'multi-event', { to: 'many' });
    assert.equal(res.status, 200);

    assert.deepEqual(await a1.waitFor(1), [{ event: 'multi-event', data: { to: 'many' } }]);
    assert.deepEqual(await a2.waitFor(1), [{ event: 'multi-event', data: { to: 'many' } }]);
    assert.deepEqual(await b2.waitFor(1), [{ event: 'multi-event', data: { to: 'many' } }]);

    // Marker on c2 proves nothing else (e.g. a duplicate) was queued before it.
    await sdk.trigger(c2, 'marker', {});
    await a2.waitFor(2);
    await b2.waitFor(2);
    const framesA = appFrames(a);
    assert.deepEqual(
      framesA.filter((f) => f.event === 'multi-event').map((f) => f.channel).sort(),
      [c1, c2].sort(),
    );
    assert.deepEqual(appFrames(b), [
      { event: 'multi-event', channel: c2, data: { to: 'many' } },
      { event: 'marker', channel: c2, data: {} },
    ]);
  });

  test('triggerBatch() delivers every event of the batch to its channel', async () => {
    const client = await pool.connect(server.port);
    const c1 = uniqueChannel('batch');
    const c2 = uniqueChannel('batch');
    const g1 = collect(await subscribe(client, c1));
    const g2 = collect(await subscribe(client, c2));

    const res = await sdk.triggerBatch([
      { channel: c1, name: 'batch-1', data: { i: 1 } },
      { channel: c2, name: 'batch-2', data: 'two' },
      { channel: c1, name: 'batch-3', data: { i: 3 } },
    ]);
    assert.equal(res.status, 200);
    const body = JSON.parse(await res.text());
    // Pusher answers `{}` or `{"batch":[{},...]}` (index-aligned) when no info was requested.
    assert.ok(
      JSON.stringify(body) === '{}' || (Array.isArray(body.batch) && body.batch.length === 3),
      `unexpected batch response ${JSON.stringify(body)}`,
    );

    assert.deepEqual(await g1.waitFor(2), [
      { event: 'batch-1', data: { i: 1 } },
      { event: 'batch-3', data: { i: 3 } },
    ]);
    assert.deepEqual(await g2.waitFor(1), [{ event: 'batch-2', data: 'two' }]);
  });

  test('socket_id exclusion: the excluded connection gets nothing, the other one gets the event', async () => {
    const excluded = await pool.connect(server.port);
    const other = await pool.connect(server.port);
    const name = uniqueChannel('excl');
    const gx = collect(await subscribe(excluded, name));
    const go = collect(await subscribe(other, name));

    const res = await sdk.trigger(name, 'not-for-you', { x: 1 }, { socket_id: excluded.connection.socket_id });
    assert.equal(res.status, 200);
    assert.deepEqual(await go.waitFor(1), [{ event: 'not-for-you', data: { x: 1 } }]);

    // A second, non-excluded event acts as a barrier: once the excluded client has it,
    // anything sent before it would have arrived already.
    await sdk.trigger(name, 'for-everyone', { x: 2 });
    assert.deepEqual(await gx.waitFor(1), [{ event: 'for-everyone', data: { x: 2 } }]);
    assert.deepEqual(await go.waitFor(2), [
      { event: 'not-for-you', data: { x: 1 } },
      { event: 'for-everyone', data: { x: 2 } },
    ]);
    await sleep(100);
    assert.deepEqual(appFrames(excluded), [{ event: 'for-everyone', channel: name, data: { x: 2 } }]);
  });

  test('socket_id exclusion in triggerBatch()', async () => {
    const excluded = await pool.connect(server.port);
    const other = await pool.connect(server.port);
    const name = uniqueChannel('excl-batch');
    const gx = collect(await subscribe(excluded, name));
    const go = collect(await subscribe(other, name));

    await sdk.triggerBatch([
      { channel: name, name: 'b-excl', data: { x: 1 }, socket_id: excluded.connection.socket_id },
      { channel: name, name: 'b-all', data: { x: 2 } },
    ]);
    assert.deepEqual(await go.waitFor(2), [
      { event: 'b-excl', data: { x: 1 } },
      { event: 'b-all', data: { x: 2 } },
    ]);
    assert.deepEqual(await gx.waitFor(1), [{ event: 'b-all', data: { x: 2 } }]);
    await sleep(100);
    assert.equal(gx.events.length, 1);
  });

  test('no delivery after unsubscribe', async () => {
    const client = await pool.connect(server.port);
    const watcher = await pool.connect(server.port);
    const name = uniqueChannel('unsub');
    await subscribe(client, name);
    const gw = collect(await subscribe(watcher, name));

    client.unsubscribe(name);
    // Wait until the server has processed the unsubscribe: subscription_count drops to 1.
    const deadline = Date.now() + 3000;
    for (;;) {
      const res = await sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } });
      const body = JSON.parse(await res.text());
      if (body.subscription_count === 1) break;
      if (Date.now() > deadline) assert.fail(`subscription_count never dropped to 1: ${JSON.stringify(body)}`);
      await sleep(50);
    }
    await sdk.trigger(name, 'after-unsub', {});
    await gw.waitFor(1);
    await sleep(100);
    assert.deepEqual(appFrames(client), []);
  });

  test('ordering: 200 sequential triggers arrive in order', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('order');
    const got = collect(await subscribe(client, name));
    const N = 200;
    for (let i = 0; i < N; i += 1) {
      const res = await sdk.trigger(name, 'seq', { i });
      assert.equal(res.status, 200, `trigger ${i} failed`);
    }
    const events = await got.waitFor(N, 15000);
    assert.equal(events.length, N);
    const seq = events.map((e) => {
      assert.equal(e.event, 'seq');
      return e.data.i;
    });
    assert.deepEqual(seq, Array.from({ length: N }, (_, i) => i));
    await sleep(100);
    assert.equal(got.events.length, N, 'no duplicates after the last event');
  });
});
