// Wildcard subscriptions (docs/adr/0012-wildcard-subscriptions.md, issue 16) with unmodified
// pusher-js 8.6.0: `pusher.subscribe('gallery/*/comments').bind('new-comment', cb)` receives
// the events of every matching channel, in each channel's order, and none of a channel the
// pattern does not match; on one node, and with the subscriber on node 1 and the publishers on
// nodes 2 and 3 of a 3-node cluster.
//
// Publishing: the npm `pusher` SDK refuses `/` in `trigger` (channel_names.test.mjs checks
// that), so events go through the SDK's own signed `post` to `/apps/1/events` (its public
// generic request, signed by the SDK), with `data` a JSON string as `trigger` would send it.
//
// A Raptor-aware client learns the concrete channel from `source_channel` in the frame.
// pusher-js 8's `connection.bind('message')` hands out its decoded {event, channel, data,
// user_id} and drops other fields, so the raw frame is read from its transport connection
// (`pusher.connection.connection.transport`, which emits every frame's text).
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { createHmac } from 'node:crypto';

import { startCluster, waitLinked } from './cluster.mjs';
import {
  APP_KEY,
  APP_SECRET,
  appFrames,
  clientPool,
  collect,
  jsonBody,
  recorder,
  serverSdk,
  sleep,
  subscribe,
  useServer,
} from './helpers.mjs';

/** Publish through the npm SDK's signed `post` (trigger refuses `/` in channel names). */
function publish(sdk, channel, event, data) {
  return jsonBody(sdk.post({
    path: '/events',
    body: { name: event, channels: [channel], data: JSON.stringify(data) },
  }));
}

/** Every raw frame text the pusher-js client's current transport receives, from now on. */
function rawFrames(client) {
  const texts = [];
  client.connection.connection.transport.bind('message', (m) => texts.push(m.data));
  return texts;
}

/**
 * The acceptance check: `sub` (connected pusher-js client) binds `new-comment` on `pattern`;
 * `rounds` events per matching channel are published round-robin over `matching`, each
 * followed by one with the same event name on every channel of `nonMatching`, through the
 * SDKs in `sdks` in turn (publish i goes through sdks[i % sdks.length]). Every publish is
 * answered before the next is sent, so each channel's order is defined even across nodes.
 */
async function patternGetsMatchingInOrder({
  sub, sdks, pattern, matching, nonMatching, rounds,
}) {
  const raw = rawFrames(sub);
  const channel = await subscribe(sub, pattern);
  const got = recorder(channel, 'new-comment');
  const all = collect(channel);

  const sent = Object.fromEntries(matching.map((ch) => [ch, []]));
  let k = 0;
  for (let n = 0; n < rounds * matching.length; n += 1) {
    const ch = matching[n % matching.length];
    await publish(sdks[k++ % sdks.length], ch, 'new-comment', { ch, n });
    sent[ch].push(n);
    for (const other of nonMatching) {
      await publish(sdks[k++ % sdks.length], other, 'new-comment', { ch: other, n });
    }
  }
  const total = rounds * matching.length;
  const calls = await got.waitFor(total, 10000);
  await sleep(300); // nothing more arrives
  assert.equal(got.calls.length, total, 'no event of a non-matching channel, no duplicate');
  const others = all.events.filter((e) => e.event !== 'new-comment');
  assert.deepEqual(others, [], 'no other event on the pattern');

  // Per channel: exactly its events, in publish order (channels interleave freely).
  const byChannel = Object.fromEntries(matching.map((ch) => [ch, []]));
  for (const [data] of calls) {
    assert.ok(data.ch in byChannel, `event of a channel the pattern does not match: ${JSON.stringify(data)}`);
    byChannel[data.ch].push(data.n);
  }
  assert.deepEqual(byChannel, sent);

  // pusher-js routes by `channel`: the pattern's name, as pusher-js decoded it.
  const frames = appFrames(sub);
  assert.equal(frames.length, total);
  assert.ok(frames.every((f) => f.channel === pattern && f.event === 'new-comment'), JSON.stringify(frames[0]));
  assert.ok(frames.every((f) => !('source_channel' in f)), 'pusher-js 8 decodes no source_channel');

  // The raw frames name the concrete channel (Raptor-aware clients).
  const events = raw.map((t) => JSON.parse(t)).filter((f) => f.event === 'new-comment');
  assert.equal(events.length, total);
  for (const f of events) {
    assert.deepEqual(Object.keys(f).sort(), ['channel', 'data', 'event', 'source_channel']);
    assert.equal(f.channel, pattern);
    assert.equal(f.source_channel, JSON.parse(f.data).ch);
  }
  const sourceOrder = Object.fromEntries(matching.map((ch) => [ch, []]));
  for (const f of events) sourceOrder[f.source_channel].push(JSON.parse(f.data).n);
  assert.deepEqual(sourceOrder, sent);
}

describe('one node', () => {
  let server;
  let sdk;
  const pool = useServer((s) => ({ server, sdk } = s));

  test("subscribe('gallery/*/comments').bind('new-comment'): three matching channels in order, not gallery/1/likes", async () => {
    const sub = await pool.connect(server.port);
    await patternGetsMatchingInOrder({
      sub,
      sdks: [sdk],
      pattern: 'gallery/*/comments',
      matching: ['gallery/1/comments', 'gallery/2/comments', 'gallery/3/comments'],
      nonMatching: ['gallery/1/likes', 'gallery/1/2/comments', 'gallery'],
      rounds: 10,
    });
  });

  test('a final ** matches any depth; after unsubscribe nothing arrives', async () => {
    const sub = await pool.connect(server.port);
    const channel = await subscribe(sub, 'orders/**');
    const got = recorder(channel, 'added');
    await publish(sdk, 'orders/7', 'added', { at: 'orders/7' });
    await publish(sdk, 'orders/7/items/2', 'added', { at: 'orders/7/items/2' });
    await publish(sdk, 'orders', 'added', { at: 'orders' });
    assert.deepEqual((await got.waitFor(2)).map(([d]) => d.at), ['orders/7', 'orders/7/items/2']);
    sub.unsubscribe('orders/**');
    await sleep(200);
    await publish(sdk, 'orders/8', 'added', { at: 'orders/8' });
    await sleep(300);
    assert.equal(got.calls.length, 2);
  });

  test('a private pattern with an HMAC signature (no token) is refused with pusher:subscription_error', async () => {
    // Signed by hand: the SDK's authorizeChannel refuses `/` and `*`.
    const sign = (socketId, name) => createHmac('sha256', APP_SECRET).update(`${socketId}:${name}`).digest('hex');
    const sub = await pool.connect(server.port, {
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, cb) => cb(null, { auth: `${APP_KEY}:${sign(socketId, channelName)}` }),
      },
    });
    const channel = sub.subscribe('private-team/*');
    const err = await new Promise((res) => channel.bind('pusher:subscription_error', res));
    assert.equal(err.type, 'TokenRequired');
    assert.equal(err.status, 403);
  });
});

describe('3-node cluster: subscriber on node 1, publishers on nodes 2 and 3', () => {
  let cluster;
  const pool = clientPool();
  before(async () => {
    cluster = await startCluster(3);
    await waitLinked(cluster.nodes);
  });
  afterEach(() => pool.closeAll());
  after(async () => {
    await pool.closeAll();
    if (cluster) await cluster.stop();
  });

  test("subscribe('gallery/*/comments').bind('new-comment') on node 1: channels published on nodes 2 and 3, in order", async () => {
    const [n1, n2, n3] = cluster.nodes;
    const sub = await pool.connect(n1.port);
    // Nine matching channels, so their owners are spread over the three nodes (rendezvous
    // hashing: all nine on one node has a chance of 3/3^9); every channel's events enter
    // through nodes 2 and 3 alternately.
    await patternGetsMatchingInOrder({
      sub,
      sdks: [serverSdk(n2.port), serverSdk(n3.port)],
      pattern: 'gallery/*/comments',
      matching: Array.from({ length: 9 }, (_, i) => `gallery/${i}/comments`),
      nonMatching: ['gallery/1/likes'],
      rounds: 4,
    });
  });

  test('three matching channels and a non-matching one, subscriber and publishers on different nodes', async () => {
    const [n1, n2, n3] = cluster.nodes;
    const sub = await pool.connect(n1.port);
    await patternGetsMatchingInOrder({
      sub,
      sdks: [serverSdk(n2.port), serverSdk(n3.port)],
      pattern: 'photos/*/comments',
      matching: ['photos/a/comments', 'photos/b/comments', 'photos/c/comments'],
      nonMatching: ['photos/a/likes'],
      rounds: 10,
    });
  });

  test('two subscribers of one pattern on different nodes both get every event', async () => {
    const [n1, n2, n3] = cluster.nodes;
    const a = await pool.connect(n1.port);
    const b = await pool.connect(n2.port);
    const sdk3 = serverSdk(n3.port);
    const ca = await subscribe(a, 'feed/*');
    const cb = await subscribe(b, 'feed/*');
    const ga = recorder(ca, 'post');
    const gb = recorder(cb, 'post');
    for (let n = 0; n < 6; n += 1) await publish(sdk3, `feed/${n % 2}`, 'post', { n });
    const want = [0, 1, 2, 3, 4, 5];
    const [ra, rb] = await Promise.allSettled([ga.waitFor(6), gb.waitFor(6)]);
    const seen = (r, g) => (r.status === 'fulfilled' ? r.value : g.calls).map(([d]) => d.n).sort();
    assert.deepEqual({ node1: seen(ra, ga), node2: seen(rb, gb) }, { node1: want, node2: want });
  });
});
