// Access tokens with the published pusher-js 8.6.0 in a token-mandatory app (docs/tokens.md):
// the app's custom handlers return a token (minted by the npm `pusher` SDK's generic
// post to the server's token API) instead of an HMAC signature.
//
// - userAuthentication.customHandler → {auth: token, user_data}: pusher.signin() sends it,
//   and pusher-js sends it again on every reconnection (before resubscribing);
// - channelAuthorization.customHandler → {auth: token} for private/presence channels.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  collect,
  jsonBody,
  sleep,
  subscribe,
  uniqueChannel,
  useServer,
  waitFrame,
  WAIT_MS,
} from './helpers.mjs';

const CONFIG = `
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
require_tokens = true
`;

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s), { config: CONFIG });

/** A token from the server's API (the SDK's generic post signs the request). */
async function mintToken(claims) {
  const res = await sdk.post({ path: '/tokens', body: claims });
  assert.equal(res.status, 200);
  return (await jsonBody(res)).token;
}

/** pusher-js options whose handlers present `token` (and sign in as `user` in `session`). */
function tokenOptions(token, user, session) {
  return {
    userAuthentication: {
      customHandler: (_params, callback) =>
        callback(null, { auth: token, user_data: JSON.stringify({ id: user, session }) }),
    },
    channelAuthorization: {
      customHandler: ({ channelName }, callback) =>
        callback(null, channelName.startsWith('presence-')
          ? { auth: token, channel_data: JSON.stringify({ user_id: user }) }
          : { auth: token }),
    },
  };
}

/** Waits for pusher-js's `pusher:signin_success` (or fails on its error). */
function signedIn(client) {
  return waitFrame(client, (f) => f.event === 'pusher:signin_success', 'signin_success');
}

/** Subscribes and resolves with 'ok' or the subscription_error's status. */
function trySubscribe(client, name) {
  const ch = client.subscribe(name);
  return new Promise((res) => {
    const timer = setTimeout(() => res('timeout'), WAIT_MS);
    ch.bind('pusher:subscription_succeeded', () => {
      clearTimeout(timer);
      res('ok');
    });
    ch.bind('pusher:subscription_error', (e) => {
      clearTimeout(timer);
      res(e.status);
    });
  });
}

test('read grants allow exactly the granted channels, patterns included', async () => {
  const chat = uniqueChannel('chat');
  const token = await mintToken({ sub: 'ann', read: ['news', 'chat-*', 'private-room-*', 'presence-lobby'] });
  const client = await pool.connect(server.port, tokenOptions(token, 'ann', 'page-1'));
  client.signin();
  await signedIn(client);
  // pusher-js subscribes to the user's own channel by itself: no grant needed for it.
  await waitFrame(
    client,
    (f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === '#server-to-user-ann',
    'the own user channel',
  );
  assert.equal(await trySubscribe(client, 'news'), 'ok');
  assert.equal(await trySubscribe(client, chat), 'ok');
  assert.equal(await trySubscribe(client, 'private-room-1'), 'ok');
  assert.equal(await trySubscribe(client, 'presence-lobby'), 'ok');
  assert.equal(client.channel('presence-lobby').members.me.id, 'ann');
  assert.equal(await trySubscribe(client, 'sports'), 403);
  assert.equal(await trySubscribe(client, 'private-other'), 403);
  // Events reach what the token may read.
  const got = collect(client.channel(chat));
  await sdk.trigger(chat, 'msg', { n: 1 });
  assert.deepEqual(await got.waitFor(1), [{ event: 'msg', data: { n: 1 } }]);
});

test('write grants allow client events exactly there', async () => {
  const room = uniqueChannel('private-room');
  const writer = await mintToken({ sub: 'w', read: ['private-room-*'], write: [room] });
  const reader = await mintToken({ sub: 'r', read: ['private-room-*'] });
  const a = await pool.connect(server.port, tokenOptions(writer, 'w', 'a'));
  const b = await pool.connect(server.port, tokenOptions(reader, 'r', 'b'));
  a.signin();
  b.signin();
  await Promise.all([signedIn(a), signedIn(b)]);
  const chA = await subscribe(a, room);
  const chB = await subscribe(b, room);
  const atB = collect(chB);
  const atA = collect(chA);
  chA.trigger('client-typing', { on: true });
  assert.deepEqual(await atB.waitFor(1), [{ event: 'client-typing', data: { on: true } }]);
  // The reader has no write grant: refused with 4315, nothing reaches the writer.
  chB.trigger('client-typing', { on: false });
  const err = await waitFrame(b, (f) => f.event === 'pusher:error', 'pusher:error');
  assert.equal(err.data.code, 4315);
  await sleep(200);
  assert.equal(atA.events.length, 0);
});

test('a one-use token survives a reconnection of its page and is refused on a second page', async () => {
  const token = await mintToken({ sub: 'once', read: ['news'], uses: 1 });
  const first = await pool.connect(server.port, tokenOptions(token, 'once', 'page-1'));
  first.signin();
  await signedIn(first);
  assert.equal(await trySubscribe(first, 'news'), 'ok');
  // pusher-js reconnects and signs in again with the same user_data: the same use.
  first.disconnect();
  await sleep(100);
  first.connect();
  await new Promise((res) => first.connection.bind('connected', res));
  await waitFrame(first, (f) => f.event === 'pusher:signin_success' && first.__frames.filter((g) => g.event === 'pusher:signin_success').length >= 2, 'second signin');
  await sleep(300);
  assert.equal(first.connection.state, 'connected');
  // A second page: its signin is refused and the connection closed (4009: no reconnect).
  const second = await pool.connect(server.port, tokenOptions(token, 'once', 'page-2'));
  const states = [];
  second.connection.bind('state_change', ({ current }) => states.push(current));
  second.signin();
  const err = await waitFrame(second, (f) => f.event === 'pusher:error', 'pusher:error');
  assert.equal(err.data.code, 4009);
  assert.equal(err.data.message, 'token used by as many sessions as it allows');
  for (let i = 0; i < 50 && second.connection.state === 'connected'; i++) await sleep(50);
  assert.notEqual(second.connection.state, 'connected');
});
