// URL-shaped channel names (docs/adr/0006-url-shaped-channel-names.md), pusher-js 8.6.0 and
// the npm `pusher` 5.3.4 SDK: `.` names go through `trigger`; `/` names are valid, are other
// channels than their `.` look-alikes, and are published with the SDK's signed `post`.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  appFrames,
  collect,
  jsonBody,
  sleep,
  subscribe,
  uniqueChannel,
  useServer,
} from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

/** `{dot, slash}`: the same URL-shaped name with `.` and with `/` between its segments. */
function names() {
  const id = uniqueChannel('n');
  return { dot: `gallery.${id}.comments`, slash: `gallery/${id}/comments` };
}

test('the npm SDK refuses `/` in trigger and in authorizeChannel, before sending anything', () => {
  const { slash } = names();
  assert.throws(() => sdk.trigger(slash, 'e', {}), /Invalid channel name/);
  assert.throws(() => sdk.authorizeChannel('1.2', `private-${slash}`), /Invalid channel name/);
});

test('a.b and a/b are two channels: each subscriber gets its own events under its exact name', async () => {
  const { dot, slash } = names();
  const a = await pool.connect(server.port);
  const b = await pool.connect(server.port);
  const onDot = collect(await subscribe(a, dot));
  const onSlash = collect(await subscribe(b, slash));

  // `.` names: the SDK's trigger. `/` names: the SDK's signed `post` to /apps/{id}/events
  // (trigger would refuse the name); `data` is a string, as trigger would have made it.
  await jsonBody(sdk.trigger(dot, 'new-comment', { text: 'dot' }));
  await jsonBody(sdk.post({
    path: '/events',
    body: { name: 'new-comment', channels: [slash], data: JSON.stringify({ text: 'slash' }) },
  }));

  assert.deepEqual(await onDot.waitFor(1), [{ event: 'new-comment', data: { text: 'dot' } }]);
  assert.deepEqual(await onSlash.waitFor(1), [{ event: 'new-comment', data: { text: 'slash' } }]);
  await sleep(200); // nothing else arrives
  assert.deepEqual(appFrames(a), [{ event: 'new-comment', channel: dot, data: { text: 'dot' } }]);
  assert.deepEqual(appFrames(b), [{ event: 'new-comment', channel: slash, data: { text: 'slash' } }]);
});

test('channel info for a `/` name: the name percent-encoded in the path', async () => {
  const { dot, slash } = names();
  const c = await pool.connect(server.port);
  await subscribe(c, slash);
  const info = (name) => jsonBody(sdk.get({
    path: `/channels/${encodeURIComponent(name)}`,
    params: { info: 'subscription_count' },
  }));
  let body;
  for (const deadline = Date.now() + 2000; Date.now() < deadline; await sleep(50)) {
    body = await info(slash); // counts may reach the owner shard a moment after subscribing
    if (body.occupied) break;
  }
  assert.deepEqual(body, { occupied: true, subscription_count: 1 });
  assert.deepEqual(await info(dot), { occupied: false, subscription_count: 0 });
});
