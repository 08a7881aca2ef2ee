// HTTP API queries with the npm `pusher` 5.3.4 SDK (`get`), subscribers are pusher-js 8.6.0.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  APP_SECRET,
  jsonBody,
  serverSdk,
  sleep,
  subscribe,
  uniqueChannel,
  useServer,
} from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

async function channelInfo(name, params) {
  return jsonBody(await sdk.get({ path: `/channels/${name}`, params }));
}

/**
 * Query until the body deep-equals `expected` or `ms` elapse, then assert on the last body.
 * (Tolerates a short propagation delay between shards, but never a wrong final value.)
 */
async function expectEventually(fetchBody, expected, ms = 2000) {
  const deadline = Date.now() + ms;
  let body;
  for (;;) {
    body = await fetchBody();
    if (JSON.stringify(body) === JSON.stringify(expected)) break;
    if (Date.now() > deadline) break;
    await sleep(50);
  }
  assert.deepEqual(body, expected);
}

describe('GET /apps/1/channels/{name} via sdk.get()', () => {
  test('unoccupied channel: {"occupied":false}', async () => {
    const name = uniqueChannel('empty');
    assert.deepEqual(await channelInfo(name), { occupied: false });
  });

  test('occupied channel without info: {"occupied":true}', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('info');
    await subscribe(client, name);
    await expectEventually(() => channelInfo(name), { occupied: true });
  });

  test('info=subscription_count returns exactly {occupied:true, subscription_count:N}', async () => {
    const name = uniqueChannel('count');
    const N = 3;
    for (let i = 0; i < N; i += 1) {
      const c = await pool.connect(server.port);
      await subscribe(c, name);
    }
    await expectEventually(
      () => channelInfo(name, { info: 'subscription_count' }),
      { occupied: true, subscription_count: N },
    );
  });

  test('subscription_count counts connections across both shards', async () => {
    // 6 connections make it very likely that both shards hold some of them.
    const name = uniqueChannel('count-shards');
    const N = 6;
    const clients = [];
    for (let i = 0; i < N; i += 1) {
      const c = await pool.connect(server.port);
      clients.push(c);
      await subscribe(c, name);
    }
    await expectEventually(
      () => channelInfo(name, { info: 'subscription_count' }),
      { occupied: true, subscription_count: N },
    );
    // Two leave: the count follows.
    clients[0].unsubscribe(name);
    clients[1].disconnect();
    await expectEventually(
      () => channelInfo(name, { info: 'subscription_count' }),
      { occupied: true, subscription_count: N - 2 },
    );
  });

  test('channel becomes unoccupied after the last subscriber leaves', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('vacate');
    await subscribe(client, name);
    await expectEventually(() => channelInfo(name), { occupied: true });
    client.unsubscribe(name);
    await expectEventually(() => channelInfo(name), { occupied: false });
  });
});

describe('GET /apps/1/channels via sdk.get()', () => {
  test('lists an occupied public channel as {"<name>":{}}', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('list');
    await subscribe(client, name);
    const deadline = Date.now() + 2000;
    let body;
    for (;;) {
      body = await jsonBody(await sdk.get({ path: '/channels' }));
      if (body.channels && body.channels[name]) break;
      if (Date.now() > deadline) break;
      await sleep(50);
    }
    assert.ok(body.channels && typeof body.channels === 'object', `no "channels" object: ${JSON.stringify(body)}`);
    assert.deepEqual(body.channels[name], {}, `channel ${name} missing from ${JSON.stringify(body)}`);
    assert.deepEqual(Object.keys(body), ['channels']);
  });

  test('filter_by_prefix only lists matching channels', async () => {
    const client = await pool.connect(server.port);
    const prefix = uniqueChannel('pfx');
    const inside = `${prefix}-in`;
    const outside = uniqueChannel('other');
    await subscribe(client, inside);
    await subscribe(client, outside);
    await expectEventually(
      () => jsonBody(sdk.get({ path: '/channels', params: { filter_by_prefix: prefix } })),
      { channels: { [inside]: {} } },
    );
  });

  test('an unsubscribed channel is no longer listed', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('gone');
    await subscribe(client, name);
    await expectEventually(
      () => jsonBody(sdk.get({ path: '/channels', params: { filter_by_prefix: name } })),
      { channels: { [name]: {} } },
    );
    client.unsubscribe(name);
    await expectEventually(
      () => jsonBody(sdk.get({ path: '/channels', params: { filter_by_prefix: name } })),
      { channels: {} },
    );
  });
});

describe('request signing', () => {
  test('a client with the wrong secret gets HTTP 401 on trigger', async () => {
    const bad = serverSdk(server.port, { secret: `${APP_SECRET}-wrong` });
    await assert.rejects(
      () => bad.trigger(uniqueChannel('bad'), 'e', { x: 1 }),
      (err) => {
        assert.equal(err.name, 'PusherRequestError');
        assert.equal(err.status, 401, `expected 401, got ${err.status}: ${err.body}`);
        return true;
      },
    );
  });

  test('a client with the wrong secret gets HTTP 401 on get', async () => {
    const bad = serverSdk(server.port, { secret: `${APP_SECRET}-wrong` });
    await assert.rejects(
      () => bad.get({ path: '/channels' }),
      (err) => {
        assert.equal(err.status, 401, `expected 401, got ${err.status}: ${err.body}`);
        return true;
      },
    );
  });

  test('a client with the wrong secret gets HTTP 401 on triggerBatch', async () => {
    const bad = serverSdk(server.port, { secret: `${APP_SECRET}-wrong` });
    await assert.rejects(
      () => bad.triggerBatch([{ channel: uniqueChannel('bad'), name: 'e', data: 'x' }]),
      (err) => {
        assert.equal(err.status, 401, `expected 401, got ${err.status}: ${err.body}`);
        return true;
      },
    );
  });

  test('an event triggered with a bad secret is not delivered', async () => {
    const client = await pool.connect(server.port);
    const name = uniqueChannel('bad-deliver');
    const channel = await subscribe(client, name);
    const seen = [];
    channel.bind_global((ev, data) => {
      if (!ev.startsWith('pusher')) seen.push({ ev, data });
    });
    const bad = serverSdk(server.port, { secret: `${APP_SECRET}-wrong` });
    await assert.rejects(() => bad.trigger(name, 'forged', {}));
    await sdk.trigger(name, 'genuine', {});
    const deadline = Date.now() + 5000;
    while (seen.length < 1 && Date.now() < deadline) await sleep(20);
    await sleep(100);
    assert.deepEqual(seen, [{ ev: 'genuine', data: {} }]);
  });
});
