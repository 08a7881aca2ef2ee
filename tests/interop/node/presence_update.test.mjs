// Presence state updates (docs/protocol.md, "Presence updates") with unmodified pusher-js 8.6.0:
// the app calls POST /apps/{id}/users/{user_id}/presence (signed by the npm `pusher` 5.3.4 SDK's
// generic `post`), and every subscriber of the presence channel, the member's own connection
// included, receives `raptor:member_updated` through `channel.bind`, with data
// {user_id, user_info}. pusher-js keeps its member list as it is (it does not know the event);
// a later subscriber's list (`channel.members.get(id).info`) has the new info.
// Across nodes: engine/tests/cluster_presence_update.rs (no interop cluster helper here).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { authOptions, recorder, subscribe, uniqueChannel, useServer } from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

const ALICE = { user_id: 'alice', user_info: { name: 'Alice' } };
const BOB = { user_id: 'bob', user_info: { name: 'Bob' } };

/** The `data` of each recorded call (pusher-js also passes metadata, `{}` here). */
const dataOf = (calls) => calls.map(([data]) => data);

async function updatePresence(userId, body) {
  const res = await sdk.post({ path: `/users/${encodeURIComponent(userId)}/presence`, body });
  return { status: res.status, body: await res.text() };
}

test('channel.bind("raptor:member_updated") gets the update; a later subscriber lists the new info', async () => {
  const name = uniqueChannel('presence-update');
  const a = await pool.connect(server.port, authOptions(sdk, { presence: ALICE }));
  const ach = await subscribe(a, name);
  const b = await pool.connect(server.port, authOptions(sdk, { presence: BOB }));
  const bch = await subscribe(b, name);
  const aUpdated = recorder(ach, 'raptor:member_updated');
  const bUpdated = recorder(bch, 'raptor:member_updated');

  const info = { name: 'Alice', status: 'away' };
  assert.deepEqual(await updatePresence('alice', { user_info: info, channel: name }), {
    status: 200,
    body: '{}',
  });
  const want = [{ user_id: 'alice', user_info: info }];
  assert.deepEqual(dataOf(await bUpdated.waitFor(1)), want, 'the other member');
  assert.deepEqual(dataOf(await aUpdated.waitFor(1)), want, 'the member itself');

  const c = await pool.connect(server.port, authOptions(sdk, { presence: { user_id: 'carol' } }));
  const cch = await subscribe(c, name);
  assert.deepEqual(cch.members.get('alice'), { id: 'alice', info });
  assert.deepEqual(cch.members.get('bob'), { id: 'bob', info: BOB.user_info });
  assert.equal(cch.members.count, 3);
});

test('without a channel every presence channel of the user is updated; bad input is refused', async () => {
  const [one, two] = [uniqueChannel('presence-update'), uniqueChannel('presence-update')];
  const a = await pool.connect(server.port, authOptions(sdk, { presence: ALICE }));
  const updated = [];
  for (const name of [one, two]) {
    const ch = await subscribe(a, name);
    updated.push(recorder(ch, 'raptor:member_updated'));
  }
  assert.equal((await updatePresence('alice', { user_info: { n: 2 } })).status, 200);
  for (const r of updated) {
    assert.deepEqual(dataOf(await r.waitFor(1)), [{ user_id: 'alice', user_info: { n: 2 } }]);
  }
  // The SDK rejects a non-2xx answer with a RequestError carrying the status and body.
  const refused = await updatePresence('alice', { user_info: 'away' }).catch((e) => ({
    status: e.status,
    body: e.body,
  }));
  assert.deepEqual(refused, { status: 400, body: '{"error":"user_info must be a JSON object"}' });
});
