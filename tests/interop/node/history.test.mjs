// Channel history and recovery with the published pusher-js 8.6.0 (plus Raptor's helper,
// clients/pusher-js/raptor-recovery.mjs) and the npm `pusher` 5.3.4 SDK's generic get/post.
//
// Contract (docs/history.md): a subscriber whose TCP connection dies reconnects on its own;
// with the helper it recovers every event published meanwhile exactly once, in order, before
// the live ones, or is told "not recovered" with nothing replayed. The history API is reached
// with sdk.get/sdk.post; edit/delete events reach pusher-js subscribers and are replayed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import Echo from 'laravel-echo';
import PusherJS from 'pusher-js';
import {
  APP_KEY,
  WAIT_MS,
  clientOptions,
  collect,
  jsonBody,
  sleep,
  subscribe,
  uniqueChannel,
  useServer,
} from './helpers.mjs';
import { enableRecovery } from '../../../clients/pusher-js/raptor-recovery.mjs';

const CONFIG = `
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"

[[apps.history]]
channels = "chat-*"
size = 1000

[[apps.history]]
channels = "small-*"
size = 10
`;

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s), { config: CONFIG });

/**
 * A TCP proxy in front of the server: `cut()` kills every connection through it (no close
 * frame: the client sees its socket die), `hold()` keeps new connections waiting (not
 * refused) until `release()`.
 */
async function proxy(targetPort) {
  const live = new Set();
  let held = null;
  const pipe = (client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    live.add(client);
    live.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  };
  const srv = net.createServer((client) => {
    client.pause();
    if (held) held.push(client);
    else pipe(client);
  });
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  return {
    port: srv.address().port,
    cut() {
      for (const s of live) s.destroy();
      live.clear();
    },
    hold() {
      held = [];
    },
    release() {
      const waiting = held || [];
      held = null;
      for (const c of waiting) pipe(c);
    },
    close: () => new Promise((res) => srv.close(res)),
  };
}

/** A pusher-js client through `port` with the recovery helper; resolves once connected. */
async function recoveringClient(port, results) {
  const client = new PusherJS(APP_KEY, clientOptions(port));
  const recovery = enableRecovery(client, { onRecovery: (channel, r) => results.push({ channel, ...r }) });
  await new Promise((res) => client.connection.bind('connected', res));
  return { client, recovery };
}

function waitState(client, state, timeoutMs = WAIT_MS) {
  return new Promise((res, rej) => {
    if (client.connection.state === state) return res();
    const timer = setTimeout(() => rej(new Error(`not ${state} within ${timeoutMs} ms (${client.connection.state})`)), timeoutMs);
    client.connection.bind(state, () => {
      clearTimeout(timer);
      res();
    });
  });
}

/**
 * Subscribes and collects the channel's events from the first one on (`raptor:recovery`
 * arrives right behind `subscription_succeeded`, often in the same read).
 */
async function subscribeCollecting(client, channel) {
  const got = collect(client.channel(channel) || client.subscribe(channel));
  await subscribe(client, channel);
  return got;
}

/**
 * Kills `client`'s connection through proxy `p`, runs `during` while new connections wait,
 * then lets it reconnect and waits until it has.
 */
async function whileAway(p, client, during) {
  p.hold();
  p.cut();
  await waitState(client, 'connecting');
  await during();
  p.release();
  await waitState(client, 'connected', 10_000);
}

async function publishRange(channel, from, to) {
  for (let n = from; n <= to; n++) {
    const res = await sdk.trigger(channel, 'e', { n });
    assert.equal(res.status, 200);
  }
}

const numbers = (events) => events.filter((e) => e.event === 'e').map((e) => e.data.n);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test('pusher-js with the helper recovers 200 events missed while its TCP connection was dead, exactly once, in order', async () => {
  const channel = uniqueChannel('chat');
  const p = await proxy(server.port);
  const results = [];
  const { client } = await recoveringClient(p.port, results);
  try {
    const got = await subscribeCollecting(client, channel);
    await publishRange(channel, 1, 5);
    await got.waitFor(6); // raptor:recovery + 5 events
    assert.deepEqual(results.map((r) => [r.was_recovering, r.recovered, r.offset]), [[false, false, 0]]);

    // The socket dies; new connections wait until 200 events went by.
    await whileAway(p, client, () => publishRange(channel, 6, 205));
    await got.waitFor(7, 10_000); // the second raptor:recovery: then publish live ones
    await publishRange(channel, 206, 215);
    const all = await got.waitFor(1 + 215 + 1, 15_000);
    assert.deepEqual(numbers(all), range(1, 215), 'every event exactly once, in order');
    assert.equal(results.length, 2);
    const r = results[1];
    assert.deepEqual(
      [r.was_recovering, r.recovered, r.offset, r.replayed, r.epoch],
      [true, true, 5, 200, results[0].epoch],
    );
    // The recovery result precedes the replayed events.
    const kinds = all.map((e) => e.event);
    assert.equal(kinds.indexOf('raptor:recovery', 1), 6);
    await sleep(200);
    assert.equal(numbers(got.events).length, 215, 'nothing after');
  } finally {
    client.disconnect();
    await p.close();
  }
});

test('a gap larger than the history is "not recovered" with zero replayed events', async () => {
  const channel = uniqueChannel('small');
  const p = await proxy(server.port);
  const results = [];
  const { client } = await recoveringClient(p.port, results);
  try {
    const got = await subscribeCollecting(client, channel);
    await publishRange(channel, 1, 2);
    await got.waitFor(3);
    await whileAway(p, client, () => publishRange(channel, 3, 30)); // the ring keeps 10
    await sleep(300);
    await publishRange(channel, 31, 31);
    await got.waitFor(5, 10_000);
    assert.deepEqual(numbers(got.events), [1, 2, 31], 'nothing replayed, live events continue');
    const r = results[1];
    assert.deepEqual([r.was_recovering, r.recovered, r.offset, r.replayed], [true, false, 30, 0]);
  } finally {
    client.disconnect();
    await p.close();
  }
});

test('without the helper, pusher-js ignores the extension: same events, no offsets, no errors', async () => {
  const channel = uniqueChannel('chat');
  const client = await pool.connect(server.port);
  const got = await subscribeCollecting(client, channel);
  await publishRange(channel, 1, 3);
  const all = await got.waitFor(4);
  assert.equal(all[0].event, 'raptor:recovery');
  assert.deepEqual(all.slice(1), [1, 2, 3].map((n) => ({ event: 'e', data: { n } })));
  assert.deepEqual(client.__errors, []);
});

test('the history API through the SDK: read, edit and delete reach pusher-js, and recovery replays the edit', async () => {
  const channel = uniqueChannel('chat');
  const p = await proxy(server.port);
  const results = [];
  const { client } = await recoveringClient(p.port, results);
  try {
    const got = await subscribeCollecting(client, channel);
    await publishRange(channel, 1, 3);
    await got.waitFor(4);
    const path = `/channels/${channel}/history`;
    const pos = await jsonBody(await sdk.get({ path }));
    assert.deepEqual(pos, { epoch: results[0].epoch, offset: 3 });
    const read = await jsonBody(await sdk.get({ path, params: { limit: 2, direction: 'newest_first' } }));
    assert.deepEqual(read.events.map((e) => [e.offset, e.event, e.data]), [[3, 'e', '{"n":3}'], [2, 'e', '{"n":2}']]);

    // An edit, live.
    const edit = await jsonBody(await sdk.post({ path: `${path}/2/edit`, body: { data: '{"n":20}' } }));
    assert.deepEqual(edit, { epoch: results[0].epoch, offset: 4 });
    const live = await got.waitFor(5);
    assert.deepEqual(live[4], { event: 'raptor:message_edit', data: { offset: 2, event: 'e', data: '{"n":20}' } });

    // A delete while the subscriber is away: recovery replays it.
    await whileAway(p, client, async () => {
      const del = await jsonBody(await sdk.post({ path: `${path}/1/delete`, body: {} }));
      assert.deepEqual(del, { epoch: results[0].epoch, offset: 5 });
    });
    const after = await got.waitFor(7, 10_000);
    assert.deepEqual(after.slice(5), [
      { event: 'raptor:recovery', data: { was_recovering: true, recovered: true, epoch: results[0].epoch, offset: 4, replayed: 1 } },
      { event: 'raptor:message_delete', data: { offset: 1, event: 'e' } },
    ]);
    const rest = await jsonBody(await sdk.get({ path, params: { limit: 10 } }));
    assert.deepEqual(rest.events.map((e) => [e.offset, e.event, e.edited === true]), [
      [2, 'e', true],
      [3, 'e', false],
      [4, 'raptor:message_edit', false],
      [5, 'raptor:message_delete', false],
    ]);
  } finally {
    client.disconnect();
    await p.close();
  }
});

test('Laravel Echo (on pusher-js) recovers through the same helper', async () => {
  const channel = uniqueChannel('chat');
  const p = await proxy(server.port);
  const echo = new Echo({ broadcaster: 'pusher', key: APP_KEY, Pusher: PusherJS, ...clientOptions(p.port) });
  const results = [];
  enableRecovery(echo.connector.pusher, { onRecovery: (c, r) => results.push(r) });
  const seen = [];
  try {
    echo.channel(channel).listen('.e', (data) => seen.push(data.n));
    const until = async (cond, what) => {
      for (let i = 0; i < 100 && !cond(); i++) await sleep(50);
      assert.ok(cond(), what);
    };
    await until(() => results.length === 1, 'subscribed');
    await publishRange(channel, 1, 3);
    await until(() => seen.length === 3, '3 live events');
    await whileAway(p, echo.connector.pusher, () => publishRange(channel, 4, 50));
    await until(() => results.length === 2, 'recovered');
    await publishRange(channel, 51, 52);
    await until(() => seen.length === 52, 'all 52');
    assert.deepEqual(seen, range(1, 52));
    assert.deepEqual([results[1].recovered, results[1].replayed], [true, 47]);
  } finally {
    echo.disconnect();
    await p.close();
  }
});
