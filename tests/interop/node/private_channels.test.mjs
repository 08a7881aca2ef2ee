// Private channels with pusher-js 8.6.0, authorized by the npm `pusher` 5.3.4 SDK's authorizeChannel()
// through channelAuthorization.customHandler (no HTTP auth endpoint involved).
//
// CURRENT SCOPE: Raptor does not support private/presence channels yet and must refuse the
// subscription with a `pusher:subscription_error` (channel-scoped) or a `pusher:error`.
// When private channels land, flip EXPECT below to 'succeeded' (and keep the rest): the same
// valid auth then has to produce `pusher:subscription_succeeded` and event delivery.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import {
  APP_KEY,
  APP_SECRET,
  WAIT_MS,
  clientPool,
  serverSdk,
  startServer,
  subscribe,
  uniqueChannel,
} from './helpers.mjs';

const EXPECT = 'refused'; // becomes 'succeeded' once private channels are implemented

let server;
let sdk;
const pool = clientPool();

before(async () => {
  server = await startServer();
  sdk = serverSdk(server.port);
});

afterEach(async () => {
  await pool.closeAll();
});

after(async () => {
  await pool.closeAll();
  if (server) await server.stop();
});

/** Resolve with the first outcome of a subscription attempt. */
function subscriptionOutcome(client, channel, timeoutMs = WAIT_MS) {
  return new Promise((res) => {
    const timer = setTimeout(() => res({ kind: 'timeout' }), timeoutMs);
    const done = (o) => {
      clearTimeout(timer);
      res(o);
    };
    channel.bind('pusher:subscription_succeeded', (data) => done({ kind: 'succeeded', data }));
    channel.bind('pusher:subscription_error', (data) => done({ kind: 'subscription_error', data }));
    client.connection.bind('error', (err) => {
      if (err && err.type === 'PusherError') done({ kind: 'pusher_error', data: err.data });
    });
  });
}

test(`private- channel with a valid SDK authorizeChannel() auth is ${EXPECT}`, async () => {
  const calls = [];
  const client = await pool.connect(server.port, {
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const auth = sdk.authorizeChannel(socketId, channelName);
          calls.push({ socketId, channelName, auth });
          callback(null, auth);
        } catch (e) {
          calls.push({ socketId, channelName, error: String(e) });
          callback(e, null);
        }
      },
    },
  });
  const socketId = client.connection.socket_id;
  const name = uniqueChannel('private-interop');
  const channel = client.subscribe(name);
  const outcome = await subscriptionOutcome(client, channel);

  // The handler ran once, with this connection's socket id, and produced a valid signature:
  // app-key:hex(HMAC-SHA256(secret, "<socket_id>:<channel>")).
  assert.equal(calls.length, 1, `customHandler calls: ${JSON.stringify(calls)}`);
  assert.equal(calls[0].socketId, socketId);
  assert.equal(calls[0].channelName, name);
  const expectedSig = createHmac('sha256', APP_SECRET).update(`${socketId}:${name}`).digest('hex');
  assert.deepEqual(calls[0].auth, { auth: `${APP_KEY}:${expectedSig}` });

  // The handler succeeded, so pusher-js did send pusher:subscribe with that auth: any error
  // below comes from the server, not from pusher-js' authorizer path (which emits AuthError).
  assert.equal(calls[0].error, undefined);

  if (EXPECT === 'refused') {
    assert.ok(
      outcome.kind === 'subscription_error' || outcome.kind === 'pusher_error',
      `expected pusher:subscription_error or pusher:error from the server, got ${JSON.stringify(outcome)}`,
    );
    assert.equal(channel.subscribed, false);
  } else {
    assert.equal(outcome.kind, 'succeeded', `expected subscription_succeeded, got ${JSON.stringify(outcome)}`);
    const got = new Promise((res) => channel.bind('private-event', res));
    await sdk.trigger(name, 'private-event', { secret: 'stuff' });
    assert.deepEqual(await got, { secret: 'stuff' });
  }
});

test('a public subscription works on a fresh connection after a private refusal elsewhere', async () => {
  // Sanity check that the refusal above did not wedge the server.
  const client = await pool.connect(server.port);
  await subscribe(client, uniqueChannel('after-private'));
});
