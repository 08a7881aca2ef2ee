// Cache channels with pusher-js 8.6.0; events published with the npm `pusher` 5.3.4 SDK.
//
// Contract (docs/protocol.md, "Cache channels"): right after subscription_succeeded a subscriber
// gets the channel's last event published through the HTTP API (past 30 minutes), or
// {"event":"pusher:cache_miss","channel":"cache-…"}, which pusher-js emits on the channel.
// GET /apps/{id}/channels/{name}?info=cache returns "cache":{"data":"..","ttl":<seconds left>}.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  appFrames,
  authOptions,
  channelInfo,
  collect,
  recorder,
  sleep,
  subscribe,
  uniqueChannel,
  waitFrame,
  useServer,
} from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

/** Event names (all, including pusher:*) in the order pusher-js decoded them for `name`. */
function eventsOn(client, name) {
  return client.__frames.filter((f) => f.channel === name).map((f) => f.event);
}

test('cache-x: pusher:cache_miss before any event; after a trigger a new subscriber gets the last event', async () => {
  const name = uniqueChannel('cache-interop');

  // 1. Nothing published yet: cache_miss, bound on the channel before subscribing.
  const first = await pool.connect(server.port);
  const ch = first.subscribe(name);
  const miss = recorder(ch, 'pusher:cache_miss');
  const got = collect(ch);
  await new Promise((res) => ch.bind('pusher:subscription_succeeded', res));
  await miss.waitFor(1);
  assert.equal(miss.calls.length, 1);
  assert.deepEqual(eventsOn(first, name), ['pusher_internal:subscription_succeeded', 'pusher:cache_miss']);

  // 2. Publish twice; the live subscriber gets both.
  await sdk.trigger(name, 'price', { v: 1 });
  await sdk.trigger(name, 'price', { v: 2, currency: 'EUR' });
  assert.deepEqual(await got.waitFor(2), [
    { event: 'price', data: { v: 1 } },
    { event: 'price', data: { v: 2, currency: 'EUR' } },
  ]);

  // 3. A new client gets the last event right after subscription_succeeded, and no cache_miss.
  const second = await pool.connect(server.port);
  const ch2 = second.subscribe(name);
  const miss2 = recorder(ch2, 'pusher:cache_miss');
  const got2 = collect(ch2);
  await new Promise((res) => ch2.bind('pusher:subscription_succeeded', res));
  assert.deepEqual(await got2.waitFor(1), [{ event: 'price', data: { v: 2, currency: 'EUR' } }]);
  await sleep(200);
  assert.deepEqual(miss2.calls, []);
  assert.deepEqual(eventsOn(second, name), ['pusher_internal:subscription_succeeded', 'price']);
  assert.deepEqual(appFrames(second), [{ event: 'price', channel: name, data: { v: 2, currency: 'EUR' } }]);

  // 4. The HTTP API shows the cached event.
  const info = await channelInfo(sdk, name, 'cache');
  assert.equal(info.occupied, true);
  assert.equal(info.cache.data, JSON.stringify({ v: 2, currency: 'EUR' }));
  assert.ok(Number.isInteger(info.cache.ttl) && info.cache.ttl > 1700 && info.cache.ttl <= 1800, `ttl ${info.cache.ttl}`);
});

test('client events are not cached (private-cache- channel)', async () => {
  const name = uniqueChannel('private-cache-interop');
  const a = await pool.connect(server.port, authOptions(sdk));
  const b = await pool.connect(server.port, authOptions(sdk));
  const ach = a.subscribe(name);
  const aMiss = recorder(ach, 'pusher:cache_miss');
  await aMiss.waitFor(1);
  const bch = await subscribe(b, name);
  const bTyping = recorder(bch, 'client-typing');
  await waitFrame(b, (f) => f.event === 'pusher:cache_miss' && f.channel === name, 'cache_miss at b');

  ach.trigger('client-typing', { on: true });
  await bTyping.waitFor(1);

  const c = await pool.connect(server.port, authOptions(sdk));
  const cch = c.subscribe(name);
  const cMiss = recorder(cch, 'pusher:cache_miss');
  await cMiss.waitFor(1);
  assert.deepEqual(appFrames(c), []);
});
