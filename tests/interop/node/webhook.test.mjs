// Webhooks checked by the npm `pusher` 5.3.4 SDK: `sdk.webhook({headers, rawBody}).isValid()`
// at a local HTTP receiver. The SDK requires `content-type` exactly `application/json`, the
// app key in `x-pusher-key`, and `x-pusher-signature` = HMAC-SHA256(secret, raw body).
// The events are made by pusher-js 8.6.0 clients joining, talking on and leaving channels.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  APP_ID,
  APP_KEY,
  APP_SECRET,
  clientPool,
  disconnectClient,
  serverSdk,
  startServer,
  subscribe,
  uniqueChannel,
} from './helpers.mjs';

let receiver;
let server;
let sdk;
let configDir;
const pool = clientPool();

/**
 * An HTTP server on 127.0.0.1 recording every request as {at, headers, rawBody} and
 * answering 200. `next(ms)` resolves with the next request not yet taken.
 */
function startReceiver() {
  const seen = [];
  const waiters = [];
  const http = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const hook = { at: Date.now(), headers: req.headers, rawBody: Buffer.concat(chunks).toString('utf8') };
      const w = waiters.shift();
      if (w) {
        clearTimeout(w.timer);
        w.res(hook);
      } else {
        seen.push(hook);
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  return new Promise((res) => {
    http.listen(0, '127.0.0.1', () => {
      res({
        url: `http://127.0.0.1:${http.address().port}/webhook`,
        next(ms, what) {
          if (seen.length) return Promise.resolve(seen.shift());
          return new Promise((resolve, reject) => {
            const w = { res: resolve };
            w.timer = setTimeout(() => {
              waiters.splice(waiters.indexOf(w), 1);
              reject(new Error(`no webhook within ${ms} ms (expected ${what})`));
            }, ms);
            waiters.push(w);
          });
        },
        /** Requests that arrived and were not taken. */
        pending: () => seen.slice(),
        close: () => new Promise((r) => { http.closeAllConnections(); http.close(r); }),
      });
    });
  });
}

before(async () => {
  receiver = await startReceiver();
  configDir = mkdtempSync(join(tmpdir(), 'raptor-webhook-'));
  const config = join(configDir, 'raptor.toml');
  writeFileSync(
    config,
    [
      '[[apps]]',
      `id = "${APP_ID}"`,
      `key = "${APP_KEY}"`,
      `secret = "${APP_SECRET}"`,
      '',
      '[[apps.webhooks]]',
      `url = "${receiver.url}"`,
      '',
    ].join('\n'),
  );
  server = await startServer({ extraArgs: ['--config', config] });
  sdk = serverSdk(server.port);
});

afterEach(async () => {
  await pool.closeAll();
});

after(async () => {
  await pool.closeAll();
  if (server) await server.stop();
  if (receiver) await receiver.close();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

/** Asserts the SDK accepts the webhook and returns its events. */
function validEvents(hook) {
  assert.equal(hook.headers['content-type'], 'application/json');
  assert.equal(hook.headers['x-pusher-key'], APP_KEY);
  const webhook = sdk.webhook({ headers: hook.headers, rawBody: hook.rawBody });
  assert.equal(webhook.isValid(), true, `isValid() for ${hook.rawBody}`);
  const skew = Math.abs(Date.now() - webhook.getTime().getTime());
  assert.ok(skew < 60_000, `time_ms is ${skew} ms off`);
  return webhook.getEvents();
}

/**
 * Validates requests as they come until `n` events about `channel` arrived; returns those in
 * order. Events about other channels (left over from earlier tests) are validated and skipped.
 */
async function collectEvents(channel, n, ms, what) {
  const deadline = Date.now() + ms;
  const events = [];
  while (events.length < n) {
    const hook = await receiver.next(Math.max(1, deadline - Date.now()), `${what} (have ${JSON.stringify(events)})`);
    events.push(...validEvents(hook).filter((e) => e.channel === channel));
  }
  return events;
}

/** pusher-js options authorizing presence channels in-process with the SDK. */
function presenceAuth(userId) {
  return {
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          callback(null, sdk.authorizeChannel(socketId, channelName, { user_id: userId, user_info: {} }));
        } catch (e) {
          callback(e, null);
        }
      },
    },
  };
}

test('channel_occupied then channel_vacated (3 s later) pass the SDK isValid()', async () => {
  const name = uniqueChannel('webhook');
  const client = await pool.connect(server.port);
  await subscribe(client, name);

  const occupied = await receiver.next(5000, 'channel_occupied');
  assert.deepEqual(validEvents(occupied), [{ name: 'channel_occupied', channel: name }]);

  // The SDK really checks: a byte changed in the body, or another secret, is refused.
  const tampered = occupied.rawBody.replace(name, `${name}x`);
  assert.equal(sdk.webhook({ headers: occupied.headers, rawBody: tampered }).isValid(), false);
  const other = serverSdk(server.port, { secret: 'not-the-secret' });
  assert.equal(other.webhook({ headers: occupied.headers, rawBody: occupied.rawBody }).isValid(), false);

  const left = Date.now();
  await disconnectClient(client);
  const vacated = await receiver.next(6000, 'channel_vacated');
  assert.deepEqual(validEvents(vacated), [{ name: 'channel_vacated', channel: name }]);
  assert.ok(vacated.at - left >= 2900, `channel_vacated came ${vacated.at - left} ms after leaving, expected ~3 s`);
});

test('leaving and coming back within 3 s sends nothing', async () => {
  const name = uniqueChannel('webhook-debounce');
  const first = await pool.connect(server.port);
  await subscribe(first, name);
  assert.deepEqual(await collectEvents(name, 1, 5000, 'channel_occupied'), [
    { name: 'channel_occupied', channel: name },
  ]);

  await disconnectClient(first);
  const second = await pool.connect(server.port);
  await subscribe(second, name);

  await new Promise((r) => setTimeout(r, 4000));
  const about = receiver.pending().flatMap(validEvents).filter((e) => e.channel === name);
  assert.deepEqual(about, [], 'no channel_vacated / channel_occupied for a quick return');
});

test('presence: member_added, client_event with user_id, then member_removed and channel_vacated', async () => {
  const name = uniqueChannel('presence-webhook');
  const client = await pool.connect(server.port, presenceAuth('u-1'));
  const channel = await subscribe(client, name);

  assert.deepEqual(await collectEvents(name, 2, 5000, 'occupied and member_added'), [
    { name: 'channel_occupied', channel: name },
    { name: 'member_added', channel: name, user_id: 'u-1' },
  ]);

  assert.equal(channel.trigger('client-typing', { who: 'u-1' }), true);
  assert.deepEqual(await collectEvents(name, 1, 5000, 'client_event'), [
    {
      name: 'client_event',
      channel: name,
      event: 'client-typing',
      data: JSON.stringify({ who: 'u-1' }),
      socket_id: client.connection.socket_id,
      user_id: 'u-1',
    },
  ]);

  await disconnectClient(client);
  assert.deepEqual(await collectEvents(name, 2, 6000, 'member_removed and vacated'), [
    { name: 'member_removed', channel: name, user_id: 'u-1' },
    { name: 'channel_vacated', channel: name },
  ]);
});
