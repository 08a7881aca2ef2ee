// User sign-in with pusher-js 8.6.0 `pusher.signin()`, authenticated in-process by the npm `pusher`
// 5.3.4 SDK's authenticateUser(socketId, {id, user_info, watchlist}) through
// userAuthentication.customHandler; then the SDK's sendToUser() and terminateUserConnections(),
// and pusher-js' `user.watchlist` online/offline events.
//
// Contract (docs/protocol.md, "Users"): after pusher:signin_success pusher-js subscribes to
// `#server-to-user-{id}`; events published there reach every connection of that user;
// terminate_connections sends pusher:error 4009 and closes every connection of the user with 4009
// (pusher-js: 4000-4099 = do not reconnect); watchlist: the current state of each watched user
// once after sign-in, then `online` on the first connection signing in and `offline` when the
// last one closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import {
  APP_KEY,
  APP_SECRET,
  authOptions,
  disconnectClient,
  recorder,
  sleep,
  waitFrame,
  waitState,
  useServer,
} from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

let userCounter = 0;
function uniqueUser(prefix) {
  userCounter += 1;
  return `${prefix}-${process.pid}-${userCounter}`;
}

/** Connect a pusher-js client that signs in as `user` (passed to authenticateUser as is). */
async function connectUser(user) {
  const opts = authOptions(sdk, { user });
  const client = await pool.connect(server.port, opts);
  client.__states = [];
  client.connection.bind('state_change', ({ current }) => client.__states.push(current));
  client.__opts = opts;
  client.__userId = user.id;
  return client;
}

/** pusher.signin(), then wait for signin_success and the `#server-to-user-{id}` subscription. */
async function signIn(client, id) {
  client.signin();
  const ok = await waitFrame(client, (f) => f.event === 'pusher:signin_success', `signin_success for ${id}`);
  await waitFrame(
    client,
    (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === `#server-to-user-${id}`,
    `subscription_succeeded for #server-to-user-${id}`,
  );
  return ok;
}

test('signin(): signin_success echoes the signed user_data; pusher-js subscribes #server-to-user-{id}', async () => {
  const id = uniqueUser('u-signin');
  const user = { id, user_info: { name: 'Ann' } };
  const client = await connectUser(user);
  const ok = await signIn(client, id);

  const calls = client.__opts.__authCalls;
  assert.equal(calls.length, 1);
  const userData = JSON.stringify(user);
  const sig = createHmac('sha256', APP_SECRET).update(`${client.connection.socket_id}::user::${userData}`).digest('hex');
  assert.deepEqual(calls[0].auth, { auth: `${APP_KEY}:${sig}`, user_data: userData });
  assert.deepEqual(ok.data, { user_data: userData });
  assert.deepEqual(client.user.user_data, user);
  assert.equal(client.user.serverToUserChannel.name, `#server-to-user-${id}`);
  assert.equal(client.user.serverToUserChannel.subscribed, true);
});

test('sendToUser() reaches user.bind() on every connection of that user, and only that user', async () => {
  const id = uniqueUser('u-send');
  const other = uniqueUser('u-other');
  const c1 = await connectUser({ id, user_info: { name: 'Ann' } });
  const c2 = await connectUser({ id, user_info: { name: 'Ann' } });
  const o = await connectUser({ id: other });
  await Promise.all([signIn(c1, id), signIn(c2, id), signIn(o, other)]);

  const r1 = recorder(c1.user, 'notify');
  const r2 = recorder(c2.user, 'notify');
  const ro = recorder(o.user, 'notify');
  const res = await sdk.sendToUser(id, 'notify', { text: 'hello', n: 1 });
  assert.equal(res.status, 200);
  assert.deepEqual(await r1.waitFor(1), [[{ text: 'hello', n: 1 }]]);
  assert.deepEqual(await r2.waitFor(1), [[{ text: 'hello', n: 1 }]]);
  // Raw frame: the event is on the user's channel.
  const frames = c1.__frames.filter((f) => f.event === 'notify');
  assert.deepEqual(frames, [{ event: 'notify', channel: `#server-to-user-${id}`, data: { text: 'hello', n: 1 } }]);

  // The other user does not get it: its own sendToUser, sent afterwards, is its first event.
  await sdk.sendToUser(other, 'notify', { text: 'for other' });
  assert.deepEqual(await ro.waitFor(1), [[{ text: 'for other' }]]);
  await sleep(100);
  assert.equal(r1.calls.length, 1);
  assert.equal(r2.calls.length, 1);
  assert.deepEqual(o.__frames.filter((f) => f.event === 'notify').map((f) => f.data), [{ text: 'for other' }]);
});

test('terminateUserConnections() closes all of the user\'s connections with 4009 and pusher-js does not reconnect', async () => {
  const id = uniqueUser('u-term');
  const other = uniqueUser('u-stays');
  const c1 = await connectUser({ id });
  const c2 = await connectUser({ id });
  const o = await connectUser({ id: other });
  await Promise.all([signIn(c1, id), signIn(c2, id), signIn(o, other)]);

  // The faye-websocket sockets under pusher-js (see the end of this test).
  const fayeSockets = [c1, c2].map((c) => c.connection.connection.transport.socket);

  const res = await sdk.terminateUserConnections(id);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(await res.text()), {});

  for (const c of [c1, c2]) {
    const state = await waitState(c, ['disconnected', 'failed', 'unavailable']);
    assert.equal(state, 'disconnected');
    // pusher:error 4009 first...
    const err = await waitFrame(c, (f) => f.event === 'pusher:error', 'pusher:error 4009');
    assert.equal(err.data.code, 4009);
    // ...then the close frame with code 4009: pusher-js reports a refused close as a
    // WebSocketError wrapping {type:'PusherError', data:{code}} (only the close path does this).
    const closeErrs = c.__errors.filter((e) => e.type === 'WebSocketError');
    assert.deepEqual(closeErrs.map((e) => e.error.data.code), [4009], JSON.stringify(c.__errors));
  }
  // No reconnection: pusher-js would retry after 0 s (4200-4299) or 1 s (4100-4199, 1011);
  // give it 1.5 s.
  await sleep(1500);
  for (const c of [c1, c2]) {
    assert.equal(c.connection.state, 'disconnected');
    const afterDisconnect = c.__states.slice(c.__states.indexOf('disconnected'));
    assert.deepEqual(afterDisconnect, ['disconnected'], `state changes: ${JSON.stringify(c.__states)}`);
  }

  // The other user's connection is untouched and still receives its events.
  assert.equal(o.connection.state, 'connected');
  assert.deepEqual(o.__states, [], `other user's state changes: ${JSON.stringify(o.__states)}`);
  const ro = recorder(o.user, 'still-here');
  await sdk.sendToUser(other, 'still-here', { ok: true });
  assert.deepEqual(await ro.waitFor(1), [[{ ok: true }]]);

  // Client-side quirk, not a server issue: on a 4000-4099 close pusher-js calls disconnect() from
  // its close handler, which calls faye's close() on the already-closed socket; that arms a 30 s
  // close timer that does nothing but keeps Node alive. Unref it so this file ends promptly.
  for (const sock of fayeSockets) {
    if (sock && sock._closeTimer && typeof sock._closeTimer.unref === 'function') sock._closeTimer.unref();
  }
});

test('watchlist: offline at sign-in, online when the watched user signs in, offline after its last connection closes', async () => {
  const target = uniqueUser('u-watched');
  const watcher = await connectUser({ id: uniqueUser('u-watcher'), watchlist: [target] });
  const online = recorder(watcher.user.watchlist, 'online');
  const offline = recorder(watcher.user.watchlist, 'offline');
  await signIn(watcher, watcher.__userId);

  // Current state once after sign-in: the target is offline.
  assert.deepEqual(await offline.waitFor(1), [[{ name: 'offline', user_ids: [target] }]]);
  assert.deepEqual(online.calls, []);

  // First connection of the target signs in: online.
  const t1 = await connectUser({ id: target });
  await signIn(t1, target);
  assert.deepEqual(await online.waitFor(1), [[{ name: 'online', user_ids: [target] }]]);

  // Second connection of the same user: no new event.
  const t2 = await connectUser({ id: target });
  await signIn(t2, target);

  // A second watcher signing in now gets the current state: online.
  const watcher2 = await connectUser({ id: uniqueUser('u-watcher'), watchlist: [target] });
  const online2 = recorder(watcher2.user.watchlist, 'online');
  const offline2 = recorder(watcher2.user.watchlist, 'offline');
  await signIn(watcher2, watcher2.__userId);
  assert.deepEqual(await online2.waitFor(1), [[{ name: 'online', user_ids: [target] }]]);
  assert.deepEqual(offline2.calls, []);

  // Closing the first of the target's connections: still online.
  await disconnectClient(t1);
  await sleep(300);
  assert.equal(online.calls.length, 1);
  assert.equal(offline.calls.length, 1, `offline calls: ${JSON.stringify(offline.calls)}`);

  // Closing the last one: offline, once, at both watchers.
  await disconnectClient(t2);
  assert.deepEqual(await offline.waitFor(2), [
    [{ name: 'offline', user_ids: [target] }],
    [{ name: 'offline', user_ids: [target] }],
  ]);
  assert.deepEqual(await offline2.waitFor(1), [[{ name: 'offline', user_ids: [target] }]]);
  await sleep(200);
  assert.equal(offline.calls.length, 2);
  assert.equal(online.calls.length, 1);
  assert.equal(online2.calls.length, 1);
});
