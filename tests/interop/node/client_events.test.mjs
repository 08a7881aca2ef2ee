// Client events sent by pusher-js 8.6.0 `channel.trigger('client-…', data)` (channels authorized by
// the npm `pusher` 5.3.4 SDK through channelAuthorization.customHandler).
//
// Contract (docs/protocol.md, "Client events"): relayed to the channel's other subscribers with
// `data` as a string, never to the sender; on presence channels the frame carries the sender's
// `user_id` (pusher-js: `metadata.user_id`); refused on public channels with pusher:error 4315.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  appFrames,
  authOptions,
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

/**
 * After `receiver` got the client event, publish `barrier` through the HTTP API on the same
 * channel: the channel's owner shard handled the client event first, so once the sender has the
 * barrier it would already have had its own event, had the server echoed it.
 */
async function assertSenderGotOnlyBarrier(sender, senderChannel, name) {
  const got = collect(senderChannel);
  await sdk.trigger(name, 'barrier', { b: 1 });
  await got.waitFor(1);
  assert.deepEqual(appFrames(sender), [{ event: 'barrier', channel: name, data: { b: 1 } }]);
}

test('private channel: client-typing reaches the other client, not the sender', async () => {
  const name = uniqueChannel('private-chat');
  const x = await pool.connect(server.port, authOptions(sdk));
  const y = await pool.connect(server.port, authOptions(sdk));
  const xch = await subscribe(x, name);
  const ych = await subscribe(y, name);
  const yTyping = recorder(ych, 'client-typing');
  const xTyping = recorder(xch, 'client-typing');

  assert.equal(xch.trigger('client-typing', { user: 'x', typing: true, n: 1 }), true);
  const calls = await yTyping.waitFor(1);
  assert.deepEqual(calls, [[{ user: 'x', typing: true, n: 1 }, {}]]);
  // Raw frame at the receiver: channel-scoped, no user_id on a private channel.
  assert.deepEqual(appFrames(y), [{ event: 'client-typing', channel: name, data: { user: 'x', typing: true, n: 1 } }]);

  await assertSenderGotOnlyBarrier(x, xch, name);
  assert.deepEqual(xTyping.calls, []);
  await sleep(100);
  assert.equal(yTyping.calls.length, 1);
});

test('presence channel: the receiver gets metadata.user_id of the sender', async () => {
  const name = uniqueChannel('presence-chat');
  const alice = await pool.connect(server.port, authOptions(sdk, { presence: { user_id: 'alice', user_info: { name: 'Alice' } } }));
  const bob = await pool.connect(server.port, authOptions(sdk, { presence: { user_id: 'bob', user_info: { name: 'Bob' } } }));
  const ach = await subscribe(alice, name);
  const bch = await subscribe(bob, name);
  const bTyping = recorder(bch, 'client-typing');

  assert.equal(ach.trigger('client-typing', { on: true }), true);
  assert.deepEqual(await bTyping.waitFor(1), [[{ on: true }, { user_id: 'alice' }]]);
  assert.deepEqual(appFrames(bob), [{ event: 'client-typing', channel: name, data: { on: true }, user_id: 'alice' }]);

  // And the other way round.
  const aTyping = recorder(ach, 'client-typing');
  assert.equal(bch.trigger('client-typing', { on: false }), true);
  assert.deepEqual(await aTyping.waitFor(1), [[{ on: false }, { user_id: 'bob' }]]);

  // Neither sender received its own event: Alice has exactly Bob's event and then the barrier.
  const aGot = collect(ach);
  const bGot = collect(bch);
  await sdk.trigger(name, 'barrier', { b: 1 });
  await aGot.waitFor(1);
  await bGot.waitFor(1);
  assert.deepEqual(appFrames(alice), [
    { event: 'client-typing', channel: name, data: { on: false }, user_id: 'bob' },
    { event: 'barrier', channel: name, data: { b: 1 } },
  ]);
  assert.deepEqual(appFrames(bob), [
    { event: 'client-typing', channel: name, data: { on: true }, user_id: 'alice' },
    { event: 'barrier', channel: name, data: { b: 1 } },
  ]);
  assert.equal(bTyping.calls.length, 1);
});

test('public channel: a client event is refused with pusher:error 4315 and not relayed', async () => {
  const name = uniqueChannel('public-chat');
  const x = await pool.connect(server.port);
  const y = await pool.connect(server.port);
  const xch = await subscribe(x, name);
  const ych = await subscribe(y, name);
  const yGot = collect(ych);

  xch.trigger('client-typing', { n: 1 });
  const err = await waitFrame(x, (f) => f.event === 'pusher:error', 'pusher:error');
  assert.equal(err.data.code, 4315);
  assert.equal(typeof err.data.message, 'string');
  assert.ok(x.__errors.some((e) => e.type === 'PusherError' && e.data.code === 4315));

  // Not relayed: y's first application event is the barrier published afterwards.
  await sdk.trigger(name, 'barrier', { b: 1 });
  assert.deepEqual(await yGot.waitFor(1), [{ event: 'barrier', data: { b: 1 } }]);
  assert.equal(x.connection.state, 'connected', 'pusher:error 4315 does not close the connection');
});
