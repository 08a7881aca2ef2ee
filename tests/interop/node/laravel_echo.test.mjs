// Laravel Echo 2.5.0 (ESM, pusher broadcaster) on top of pusher-js 8.6.0; events published and
// channels authorized by the npm `pusher` 5.3.4 SDK.
//
// Echo 2.5.0 hands its whole options object to `new options.Pusher(key, options)`; it has no
// authorizer of its own. pusher-js 8.6.0 then honours the (deprecated, still supported)
// `authorizer: (channel, options) => ({ authorize(socketId, callback) })` option when no
// `channelAuthorization` is given (dist/node/pusher.js: buildChannelAuth → ChannelAuthorizerProxy).
// Echo names: echo.private('chat.1') → private-chat.1, echo.join('room.1') → presence-room.1,
// .listen('.x') → event "x" (leading dot: no App\Events namespace), whisper('t') → client-t.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';

import Echo from 'laravel-echo';
import PusherJS from 'pusher-js';

import {
  APP_KEY,
  WAIT_MS,
  clientOptions,
  serverSdk,
  sleep,
  startServer,
} from './helpers.mjs';

let server;
let sdk;
let echos = [];

before(async () => {
  server = await startServer();
  sdk = serverSdk(server.port);
});

afterEach(async () => {
  const es = echos.splice(0);
  for (const e of es) e.disconnect();
  await sleep(50);
});

after(async () => {
  for (const e of echos.splice(0)) e.disconnect();
  if (server) await server.stop();
});

/**
 * A connected Echo instance. `presence` ({user_id, user_info}) is signed into the channel_data of
 * presence channels. `echo.__authCalls` records the authorizer's calls.
 */
async function makeEcho(presence) {
  const calls = [];
  const echo = new Echo({
    broadcaster: 'pusher',
    key: APP_KEY,
    Pusher: PusherJS,
    ...clientOptions(server.port),
    authorizer: (channel) => ({
      authorize: (socketId, callback) => {
        try {
          const auth = channel.name.startsWith('presence-')
            ? sdk.authorizeChannel(socketId, channel.name, presence)
            : sdk.authorizeChannel(socketId, channel.name);
          calls.push({ socketId, channel: channel.name, auth });
          callback(null, auth);
        } catch (e) {
          calls.push({ socketId, channel: channel.name, error: String(e) });
          callback(e, null);
        }
      },
    }),
  });
  echo.__authCalls = calls;
  echos.push(echo);
  const conn = echo.connector.pusher.connection;
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`Echo did not connect within ${WAIT_MS} ms (${conn.state})`)), WAIT_MS);
    if (conn.state === 'connected') {
      clearTimeout(timer);
      res();
      return;
    }
    conn.bind('connected', () => {
      clearTimeout(timer);
      res();
    });
  });
  assert.equal(echo.connectionStatus(), 'connected');
  assert.match(echo.socketId(), /^\d+\.\d+$/);
  return echo;
}

/** Resolve when the Echo channel reports subscribed (Echo's .subscribed()), reject on .error(). */
function subscribed(echoChannel, what) {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${what}: not subscribed within ${WAIT_MS} ms`)), WAIT_MS);
    echoChannel.subscribed(() => {
      clearTimeout(timer);
      res();
    });
    echoChannel.error((err) => {
      clearTimeout(timer);
      rej(new Error(`${what}: subscription error ${JSON.stringify(err)}`));
    });
  });
}

/**
 * An array plus `waitFor(n)`; `push` is the callback to hand to Echo. Only the first argument is
 * kept: Echo binds listen()/listenForWhisper() callbacks straight on the pusher-js channel, which
 * also passes a second `metadata` argument ({} here).
 */
function calls(what) {
  const list = [];
  const waiters = [];
  const push = (payload) => {
    list.push(payload);
    for (const w of [...waiters]) {
      if (list.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.res(list.slice());
      }
    }
  };
  return {
    list,
    push,
    waitFor(n, timeoutMs = WAIT_MS) {
      if (list.length >= n) return Promise.resolve(list.slice());
      return new Promise((res, rej) => {
        const w = { n, res };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          rej(new Error(`${what}: expected ${n} calls within ${timeoutMs} ms, got ${list.length}: ${JSON.stringify(list)}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

test("echo.channel('orders').listen('.order.shipped') receives an event triggered with the SDK", async () => {
  const echo = await makeEcho();
  const shipped = calls('order.shipped');
  const other = calls('other');
  const ch = echo.channel('orders').listen('.order.shipped', shipped.push).listen('.order.other', other.push);
  await subscribed(ch, 'orders');

  const res = await sdk.trigger('orders', 'order.shipped', { id: 17, items: ['a', 'b'] });
  assert.equal(res.status, 200);
  // The App\Events namespace form is a different event name and must not match '.order.shipped'.
  await sdk.trigger('orders', 'App\\Events\\order.shipped', { id: 18 });
  await sdk.trigger('orders', 'order.other', { id: 19 });
  assert.deepEqual(await other.waitFor(1), [{ id: 19 }]);
  assert.deepEqual(await shipped.waitFor(1), [{ id: 17, items: ['a', 'b'] }]);
  assert.equal(shipped.list.length, 1);
  assert.deepEqual(echo.__authCalls, [], 'a public channel needs no authorization');
});

test("echo.private('chat.1').whisper('typing') reaches another Echo's listenForWhisper('typing')", async () => {
  const sender = await makeEcho();
  const receiver = await makeEcho();
  const sCh = sender.private('chat.1');
  const rCh = receiver.private('chat.1');
  const got = calls('whisper at receiver');
  const echoed = calls('whisper at sender');
  rCh.listenForWhisper('typing', got.push);
  sCh.listenForWhisper('typing', echoed.push);
  await Promise.all([subscribed(sCh, 'sender private-chat.1'), subscribed(rCh, 'receiver private-chat.1')]);

  assert.deepEqual(sender.__authCalls.map((c) => c.channel), ['private-chat.1']);
  assert.equal(sender.__authCalls[0].socketId, sender.socketId());
  assert.equal(sender.connector.pusher.channel('private-chat.1').subscribed, true);

  sCh.whisper('typing', { name: 'Alice', typing: true });
  assert.deepEqual(await got.waitFor(1), [{ name: 'Alice', typing: true }]);

  // Not echoed to the sender: an API event published afterwards on the same channel arrives first.
  const barrier = calls('barrier at sender');
  sCh.listen('.barrier', barrier.push);
  await sdk.trigger('private-chat.1', 'barrier', { b: 1 });
  await barrier.waitFor(1);
  assert.deepEqual(echoed.list, []);
  assert.equal(got.list.length, 1);
});

test("echo.join('room.1'): here() lists members, joining() fires when a second user joins, leaving() when they leave", async () => {
  const alice = { user_id: 'alice', user_info: { id: 'alice', name: 'Alice' } };
  const bob = { user_id: 'bob', user_info: { id: 'bob', name: 'Bob' } };

  const a = await makeEcho(alice);
  const aHere = calls('here at alice');
  const aJoining = calls('joining at alice');
  const aLeaving = calls('leaving at alice');
  a.join('room.1').here(aHere.push).joining(aJoining.push).leaving(aLeaving.push);
  assert.deepEqual(await aHere.waitFor(1), [[{ id: 'alice', name: 'Alice' }]]);
  assert.deepEqual(a.__authCalls.map((c) => c.channel), ['presence-room.1']);
  assert.equal(a.__authCalls[0].auth.channel_data, JSON.stringify(alice));

  const b = await makeEcho(bob);
  const bHere = calls('here at bob');
  const bJoining = calls('joining at bob');
  b.join('room.1').here(bHere.push).joining(bJoining.push);
  const [bMembers] = await bHere.waitFor(1);
  assert.deepEqual(
    [...bMembers].sort((x, y) => x.id.localeCompare(y.id)),
    [{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }],
  );
  assert.deepEqual(await aJoining.waitFor(1), [{ id: 'bob', name: 'Bob' }]);

  // Bob leaves the channel (Echo.leave unsubscribes presence-room.1).
  b.leave('room.1');
  assert.deepEqual(await aLeaving.waitFor(1), [{ id: 'bob', name: 'Bob' }]);
  await sleep(200);
  assert.equal(aJoining.list.length, 1);
  assert.equal(aLeaving.list.length, 1);
  assert.deepEqual(bJoining.list, []);
  assert.equal(aHere.list.length, 1);
});
