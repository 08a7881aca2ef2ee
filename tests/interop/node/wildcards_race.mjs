// Diagnostic, not part of the suite (no `.test.mjs`): in a 3-node cluster, a pattern
// subscription answered (`subscription_succeeded`) on node 1, then events published at once
// through node 3 (`PUB=1`: node 2, `PUB=0`: node 1) to six matching channels owned all over
// the cluster; prints how many of the events published after the answer never arrived.
// ADR 0005 says none may be missed. Before registrations were acknowledged (PatternAck,
// ADR 0012) a busy machine missed 2-5 of 240; since, 0 of 480.
//   RAPTOR_BIN=... TRIALS=40 node tests/interop/node/wildcards_race.mjs
import { startCluster, waitLinked } from './cluster.mjs';
import { connectClient, serverSdk, subscribe, jsonBody, sleep, disconnectClient } from './helpers.mjs';

const cl = await startCluster(3);
try {
  await waitLinked(cl.nodes);
  const sub = await connectClient(cl.nodes[0].port);
  const sdk = serverSdk(cl.nodes[Number(process.env.PUB ?? 2)].port);
  let missed = 0; let trials = 0; const examples = [];
  for (let k = 0; k < Number(process.env.TRIALS ?? 40); k += 1) {
    const pattern = `r${k}/*`;
    const ch = await subscribe(sub, pattern);
    const got = [];
    ch.bind('e', (d) => got.push(d.c));
    const chans = Array.from({ length: 6 }, (_, i) => `r${k}/${i}`);
    for (const c of chans) {
      await jsonBody(sdk.post({ path: '/events', body: { name: 'e', channels: [c], data: JSON.stringify({ c }) } }));
    }
    await sleep(300);
    trials += chans.length;
    const lost = chans.filter((c) => !got.includes(c));
    missed += lost.length;
    if (lost.length) examples.push({ pattern, lost });
  }
  console.log(JSON.stringify({ trials, missed, examples: examples.slice(0, 10) }));
  await disconnectClient(sub);
} finally {
  await cl.stop();
}
