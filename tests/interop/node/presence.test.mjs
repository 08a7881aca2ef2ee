// Presence channels with pusher-js 8.6.0, authorized in-process by the npm `pusher` 5.3.4 SDK's
// authorizeChannel(socketId, channel, {user_id, user_info}) through channelAuthorization.customHandler.
//
// Contract (docs/protocol.md, "Presence"): `ids`/`count` are distinct users; the multi-tab rule:
// member_added only for a user's first connection (not to the joining connection), member_removed
// only after the user's last connection leaves; a numeric user_id becomes its decimal string.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  authOptions,
  channelInfo,
  disconnectClient,
  jsonBody,
  pollUntil,
  recorder,
  sleep,
  subscribe,
  uniqueChannel,
  waitFrame,
  useServer,
} from './helpers.mjs';

let server;
let sdk;
const pool = useServer((s) => ({ server, sdk } = s));

const ALICE = { user_id: 'alice', user_info: { name: 'Alice', tabs: 2 } };
const BOB = { user_id: 'bob', user_info: { name: 'Bob' } };

/** pusher-js Members as a sorted [{id, info}] list, via members.each(). */
function memberList(channel) {
  const out = [];
  channel.members.each((m) => out.push({ id: m.id, info: m.info }));
  return out.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

function presenceFrames(client, event, name) {
  return client.__frames.filter((f) => f.event === event && f.channel === name).map((f) => f.data);
}

test('multi-tab rule: user A on two pusher-js clients, user B joins and A leaves tab by tab', async () => {
  const name = uniqueChannel('presence-interop');

  // A, first tab.
  const a1 = await pool.connect(server.port, authOptions(sdk, { presence: ALICE }));
  const a1ch = await subscribe(a1, name);
  const a1Added = recorder(a1ch, 'pusher:member_added');
  const a1Removed = recorder(a1ch, 'pusher:member_removed');
  assert.equal(a1ch.members.count, 1);
  assert.deepEqual(a1ch.members.me, { id: 'alice', info: ALICE.user_info });
  assert.deepEqual(presenceFrames(a1, 'pusher_internal:subscription_succeeded', name), [
    { presence: { ids: ['alice'], hash: { alice: ALICE.user_info }, count: 1 } },
  ]);

  // A, second tab: still one distinct user.
  const a2 = await pool.connect(server.port, authOptions(sdk, { presence: ALICE }));
  const a2ch = await subscribe(a2, name);
  const a2Added = recorder(a2ch, 'pusher:member_added');
  const a2Removed = recorder(a2ch, 'pusher:member_removed');
  assert.equal(a2ch.members.count, 1);
  assert.deepEqual(memberList(a2ch), [{ id: 'alice', info: ALICE.user_info }]);

  // B joins.
  const b = await pool.connect(server.port, authOptions(sdk, { presence: BOB }));
  const bch = await subscribe(b, name);
  const bAdded = recorder(bch, 'pusher:member_added');
  const bRemoved = recorder(bch, 'pusher:member_removed');
  assert.equal(bch.members.count, 2);
  assert.deepEqual(memberList(bch), [
    { id: 'alice', info: ALICE.user_info },
    { id: 'bob', info: BOB.user_info },
  ]);
  assert.deepEqual(bch.members.me, { id: 'bob', info: BOB.user_info });
  const bSucceeded = presenceFrames(b, 'pusher_internal:subscription_succeeded', name);
  assert.equal(bSucceeded.length, 1);
  assert.deepEqual(bSucceeded[0].presence.ids, ['alice', 'bob'], 'ids are distinct users in join order');
  assert.equal(bSucceeded[0].presence.count, 2);
  assert.deepEqual(bSucceeded[0].presence.hash, { alice: ALICE.user_info, bob: BOB.user_info });

  // Each A client gets member_added for B exactly once; A's second tab was never announced to A's first.
  assert.deepEqual(await a1Added.waitFor(1), [[{ id: 'bob', info: BOB.user_info }]]);
  assert.deepEqual(await a2Added.waitFor(1), [[{ id: 'bob', info: BOB.user_info }]]);
  assert.deepEqual(presenceFrames(a1, 'pusher_internal:member_added', name), [
    { user_id: 'bob', user_info: BOB.user_info },
  ]);
  assert.equal(a1ch.members.count, 2);
  assert.equal(a2ch.members.count, 2);

  // HTTP API view: 2 users, 3 subscriptions.
  assert.deepEqual(await channelInfo(sdk, name, 'user_count'), { occupied: true, user_count: 2 });
  const users = await jsonBody(sdk.get({ path: `/channels/${name}/users` }));
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['alice', 'bob']);

  // Close A's first tab: B must not see member_removed. Wait until the server has processed
  // the close (subscription_count drops to 2) before checking.
  await disconnectClient(a1);
  const afterFirst = await pollUntil(
    () => channelInfo(sdk, name, 'subscription_count,user_count'),
    { occupied: true, user_count: 2, subscription_count: 2 },
  );
  assert.deepEqual(afterFirst, { occupied: true, user_count: 2, subscription_count: 2 });
  await sleep(200);
  assert.deepEqual(bRemoved.calls, [], 'no member_removed while A still has a connection');
  assert.deepEqual(presenceFrames(b, 'pusher_internal:member_removed', name), []);
  assert.equal(bch.members.count, 2);

  // Close A's second tab: exactly one member_removed at B.
  await disconnectClient(a2);
  assert.deepEqual(await bRemoved.waitFor(1), [[{ id: 'alice', info: ALICE.user_info }]]);
  await sleep(300);
  assert.equal(bRemoved.calls.length, 1, `member_removed calls at B: ${JSON.stringify(bRemoved.calls)}`);
  assert.deepEqual(presenceFrames(b, 'pusher_internal:member_removed', name), [{ user_id: 'alice' }]);
  assert.equal(bch.members.count, 1);
  assert.deepEqual(memberList(bch), [{ id: 'bob', info: BOB.user_info }]);
  assert.deepEqual(bAdded.calls, []);
  assert.deepEqual(a1Removed.calls, []);
  assert.deepEqual(a2Removed.calls, []);
  assert.deepEqual(await channelInfo(sdk, name, 'user_count'), { occupied: true, user_count: 1 });
});

test('a second user joining fires member_added at the first; leaving fires member_removed once', async () => {
  const name = uniqueChannel('presence-interop');
  const a = await pool.connect(server.port, authOptions(sdk, { presence: ALICE }));
  const ach = await subscribe(a, name);
  const added = recorder(ach, 'pusher:member_added');
  const removed = recorder(ach, 'pusher:member_removed');

  const b = await pool.connect(server.port, authOptions(sdk, { presence: BOB }));
  await subscribe(b, name);
  assert.deepEqual(await added.waitFor(1), [[{ id: 'bob', info: BOB.user_info }]]);
  assert.equal(ach.members.count, 2);
  assert.deepEqual(ach.members.get('bob'), { id: 'bob', info: BOB.user_info });

  b.unsubscribe(name);
  assert.deepEqual(await removed.waitFor(1), [[{ id: 'bob', info: BOB.user_info }]]);
  await sleep(200);
  assert.equal(removed.calls.length, 1);
  assert.equal(ach.members.count, 1);
  assert.equal(ach.members.get('bob'), null);
});

test('a numeric user_id becomes its decimal string for the other members', async () => {
  const name = uniqueChannel('presence-interop');
  const a = await pool.connect(server.port, authOptions(sdk, { presence: ALICE }));
  const ach = await subscribe(a, name);
  const added = recorder(ach, 'pusher:member_added');

  const n = await pool.connect(server.port, authOptions(sdk, { presence: { user_id: 42, user_info: { name: 'Num' } } }));
  const nch = await subscribe(n, name);
  assert.deepEqual(await added.waitFor(1), [[{ id: '42', info: { name: 'Num' } }]]);
  assert.deepEqual(presenceFrames(a, 'pusher_internal:member_added', name), [
    { user_id: '42', user_info: { name: 'Num' } },
  ]);
  const succeeded = presenceFrames(n, 'pusher_internal:subscription_succeeded', name);
  assert.deepEqual(succeeded[0].presence.ids, ['alice', '42']);
  assert.equal(nch.members.count, 2);
});

// Raptor extension (docs/protocol.md, "Privileged presence channels"): pusher-js needs no change;
// `"privileged":true` in the signed channel_data marks a member privileged.
test('presence-privileged-: only privileged members see the member list and may send client events', async () => {
  const name = uniqueChannel('presence-privileged-ward');
  const NURSE = { user_id: 'nurse-7', user_info: { role: 'nurse' }, privileged: true };
  const P1 = { user_id: 'patient-1', user_info: { role: 'patient' } };
  const P2 = { user_id: 'patient-2', user_info: { role: 'patient' } };

  const nurse = await pool.connect(server.port, authOptions(sdk, { presence: NURSE }));
  const nch = await subscribe(nurse, name);
  const nAdded = recorder(nch, 'pusher:member_added');
  const nRemoved = recorder(nch, 'pusher:member_removed');
  assert.deepEqual(nch.members.me, { id: 'nurse-7', info: { role: 'nurse' } });

  const p1 = await pool.connect(server.port, authOptions(sdk, { presence: P1 }));
  const p1ch = await subscribe(p1, name);
  const p1Added = recorder(p1ch, 'pusher:member_added');
  const p1Removed = recorder(p1ch, 'pusher:member_removed');
  // An unprivileged member's list holds only itself.
  assert.equal(p1ch.members.count, 1);
  assert.deepEqual(memberList(p1ch), [{ id: 'patient-1', info: { role: 'patient' } }]);
  assert.deepEqual(presenceFrames(p1, 'pusher_internal:subscription_succeeded', name), [
    { presence: { ids: ['patient-1'], hash: { 'patient-1': { role: 'patient' } }, count: 1 } },
  ]);

  const p2 = await pool.connect(server.port, authOptions(sdk, { presence: P2 }));
  const p2ch = await subscribe(p2, name);
  assert.equal(p2ch.members.count, 1);

  // The privileged member sees both joins.
  assert.deepEqual(await nAdded.waitFor(2), [
    [{ id: 'patient-1', info: { role: 'patient' } }],
    [{ id: 'patient-2', info: { role: 'patient' } }],
  ]);
  assert.equal(nch.members.count, 3);

  // Everyone receives the channel's events; an unprivileged member got no member_added before it.
  const p1Got = recorder(p1ch, 'announce');
  await sdk.trigger(name, 'announce', { text: 'rounds' });
  assert.deepEqual(await p1Got.waitFor(1), [[{ text: 'rounds' }, {}]]);
  assert.deepEqual(p1Added.calls, []);

  // Client events: refused for an unprivileged member (4315), relayed for the privileged one.
  const p2Typing = recorder(p2ch, 'client-note');
  p1ch.trigger('client-note', { from: 'patient-1' });
  const err = await waitFrame(p1, (f) => f.event === 'pusher:error', 'pusher:error 4315');
  assert.equal(err.data.code, 4315);
  nch.trigger('client-note', { from: 'nurse' });
  assert.deepEqual(await p2Typing.waitFor(1), [[{ from: 'nurse' }, { user_id: 'nurse-7' }]]);

  // A patient leaving: member_removed at the nurse only.
  await disconnectClient(p2);
  assert.deepEqual(await nRemoved.waitFor(1), [[{ id: 'patient-2', info: { role: 'patient' } }]]);
  const p1Got2 = recorder(p1ch, 'announce-2');
  await sdk.trigger(name, 'announce-2', { n: 2 });
  await p1Got2.waitFor(1);
  assert.deepEqual(p1Removed.calls, []);
  assert.deepEqual(presenceFrames(p1, 'pusher_internal:member_removed', name), []);
  assert.deepEqual(presenceFrames(p1, 'pusher_internal:member_added', name), []);
});
