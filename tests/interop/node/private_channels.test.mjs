// Private channels with pusher-js 8.6.0, authorized by the npm `pusher` 5.3.4 SDK's authorizeChannel()
// through channelAuthorization.customHandler (no HTTP auth endpoint involved).
//
// Contract (docs/protocol.md, "Channels"): `auth` = key:hex(HMAC-SHA256(secret, "socket_id:channel"))
// gives pusher_internal:subscription_succeeded; a wrong signature gives a channel-scoped
// pusher:subscription_error {"type":"AuthError","error":..,"status":401} and nothing from the channel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import {
  APP_KEY,
  APP_SECRET,
  appFrames,
  authOptions,
  collect,
  serverSdk,
  sleep,
  subscriptionOutcome,
  uniqueChannel,
  useServer,
} from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

test('private- channel with a valid SDK authorizeChannel() auth: subscription_succeeded, then events arrive', async () => {
  const opts = authOptions(sdk);
  const client = await pool.connect(server.port, opts);
  const socketId = client.connection.socket_id;
  const name = uniqueChannel('private-interop');
  const outcome = await subscriptionOutcome(client, name);

  // The handler ran once, with this connection's socket id, and produced the documented signature:
  // app-key:hex(HMAC-SHA256(secret, "<socket_id>:<channel>")).
  const calls = opts.__authCalls;
  assert.equal(calls.length, 1, `customHandler calls: ${JSON.stringify(calls)}`);
  assert.equal(calls[0].socketId, socketId);
  assert.equal(calls[0].channelName, name);
  const expectedSig = createHmac('sha256', APP_SECRET).update(`${socketId}:${name}`).digest('hex');
  assert.deepEqual(calls[0].auth, { auth: `${APP_KEY}:${expectedSig}` });

  assert.equal(outcome.kind, 'succeeded', `expected subscription_succeeded, got ${JSON.stringify(outcome.data)} (${outcome.kind})`);
  const channel = outcome.channel;
  assert.equal(channel.subscribed, true);
  const succeeded = client.__frames.filter((f) => f.event === 'pusher_internal:subscription_succeeded');
  assert.deepEqual(succeeded.map((f) => f.channel), [name]);

  const got = collect(channel);
  const res = await sdk.trigger(name, 'private-event', { secret: 'stuff', n: 1 });
  assert.equal(res.status, 200);
  const res2 = await sdk.trigger(name, 'private-event-2', 'plain string');
  assert.equal(res2.status, 200);
  assert.deepEqual(await got.waitFor(2), [
    { event: 'private-event', data: { secret: 'stuff', n: 1 } },
    { event: 'private-event-2', data: 'plain string' },
  ]);
  assert.deepEqual(appFrames(client), [
    { event: 'private-event', channel: name, data: { secret: 'stuff', n: 1 } },
    { event: 'private-event-2', channel: name, data: 'plain string' },
  ]);
});

test('private- channel with a wrong signature: pusher:subscription_error on the channel with status 401, no events', async () => {
  // Same SDK, wrong secret: authorizeChannel() produces a well-formed but wrong signature.
  const wrong = serverSdk(server.port, { secret: 'not-the-app-secret' });
  const opts = authOptions(wrong);
  const client = await pool.connect(server.port, opts);
  const name = uniqueChannel('private-interop');
  const outcome = await subscriptionOutcome(client, name);

  assert.equal(opts.__authCalls.length, 1);
  assert.equal(opts.__authCalls[0].error, undefined, 'the handler itself succeeded; any refusal is the server\'s');
  assert.equal(outcome.kind, 'subscription_error', `expected subscription_error, got ${outcome.kind} ${JSON.stringify(outcome.data)}`);
  // pusher-js passes the JSON-decoded `data` of the server's channel-scoped pusher:subscription_error.
  assert.equal(outcome.data.type, 'AuthError');
  assert.equal(outcome.data.status, 401);
  assert.equal(typeof outcome.data.error, 'string');
  assert.equal(outcome.channel.subscribed, false);
  const errFrames = client.__frames.filter((f) => f.event === 'pusher:subscription_error');
  assert.equal(errFrames.length, 1);
  assert.equal(errFrames[0].channel, name);
  assert.equal(client.__frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), false);

  // Nothing published on the channel reaches the refused client: a correctly authorized client on
  // the same channel receives the event, and 200 ms later the refused one still has nothing.
  const good = await pool.connect(server.port, authOptions(sdk));
  const goodOutcome = await subscriptionOutcome(good, name);
  assert.equal(goodOutcome.kind, 'succeeded', JSON.stringify(goodOutcome.data));
  const goodGot = collect(goodOutcome.channel);
  await sdk.trigger(name, 'should-not-reach-refused', { n: 1 });
  assert.deepEqual(await goodGot.waitFor(1), [{ event: 'should-not-reach-refused', data: { n: 1 } }]);
  await sleep(200);
  assert.deepEqual(appFrames(client), []);
  assert.equal(client.connection.state, 'connected', 'a refused subscription does not close the connection');
});

test('a private subscription with a valid auth works on the same server after a refusal', async () => {
  const client = await pool.connect(server.port, authOptions(sdk));
  const outcome = await subscriptionOutcome(client, uniqueChannel('private-after'));
  assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome.data));
});

test('private-encrypted- channel: the SDK encrypts, the server relays untouched, pusher-js decrypts', async () => {
  // 32-byte master key; the SDK derives the channel's shared secret from it and hands it to
  // pusher-js in the authorizeChannel() answer (`shared_secret`).
  const masterKey = Buffer.alloc(32, 7).toString('base64');
  const esdk = serverSdk(server.port, { encryptionMasterKeyBase64: masterKey });
  const opts = authOptions(esdk);
  const client = await pool.connect(server.port, opts);
  const name = uniqueChannel('private-encrypted-interop');
  const outcome = await subscriptionOutcome(client, name);
  assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome.data));
  assert.equal(typeof opts.__authCalls[0].auth.shared_secret, 'string');

  const got = collect(outcome.channel);
  await esdk.trigger(name, 'secret-event', { msg: 'for your eyes only', n: 3 });
  assert.deepEqual(await got.waitFor(1), [{ event: 'secret-event', data: { msg: 'for your eyes only', n: 3 } }]);
  // On the wire the server relayed the SDK's {"nonce","ciphertext"} envelope as is.
  const raw = client.__frames.filter((f) => f.event === 'secret-event');
  assert.equal(raw.length, 1);
  assert.deepEqual(Object.keys(raw[0].data).sort(), ['ciphertext', 'nonce']);
  assert.equal(raw[0].channel, name);
});
