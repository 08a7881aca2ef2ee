// A Raptor cluster of real `raptor serve` processes on 127.0.0.1 for the interop tests, started
// the way engine/tests/common/cluster.rs starts one: every node with `--node-id node-I`, its
// own gossip (UDP) and peer (TCP) ports, every node's gossip address as `--seeds`, one
// `--cluster-id`, and a random cluster secret in `RAPTOR_CLUSTER_SECRET`. Client and HTTP API
// ports are ephemeral (`--bind 127.0.0.1:0`); each node's metrics listener (also ephemeral)
// answers `GET /stats`, which `waitLinked` polls until every node sees the whole cluster.

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';

import { sleep, startServer } from './helpers.mjs';

/** Whether UDP `gossip` and TCP `peer` can be bound on 127.0.0.1 right now. */
async function portsFree(gossip, peer) {
  const udp = await new Promise((res) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => res(false));
    s.bind(gossip, '127.0.0.1', () => s.close(() => res(true)));
  });
  if (!udp) return false;
  return new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen(peer, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** `n` (gossip, peer) port pairs below the ephemeral range, free right now. */
async function freePortPairs(n) {
  const out = [];
  while (out.length < n) {
    const g = 20000 + Math.floor(Math.random() * 9000);
    const p = g + 1;
    const clash = out.some(([a, b]) => [a, b].includes(g) || [a, b].includes(p));
    if (!clash && await portsFree(g, p)) out.push([g, p]);
  }
  return out;
}

/**
 * Start an `n`-node cluster (default 3). Resolves with `{nodes, stop}`: `nodes[i]` is
 * startServer's handle of node-i (`port` for pusher-js and the HTTP API, `metricsPort`).
 * `stop()` stops every node (SIGTERM, SIGKILL after 5 s); call it in `after`.
 */
export async function startCluster(n = 3) {
  const pairs = await freePortPairs(n);
  const clusterId = `interop-${process.pid}-${randomBytes(4).toString('hex')}`;
  const secret = randomBytes(16).toString('hex');
  const nodes = [];
  const stop = () => Promise.all(nodes.map((s) => s.stop()));
  try {
    for (let i = 0; i < n; i += 1) {
      let lastError;
      // If a port was taken meanwhile (test files run in parallel), pick another pair.
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const [g, p] = pairs[i];
        const seeds = pairs.map(([sg]) => `127.0.0.1:${sg}`).join(',');
        try {
          nodes.push(await startServer({
            metricsBind: '127.0.0.1:0',
            env: { RAPTOR_CLUSTER_SECRET: secret },
            extraArgs: [
              '--node-id', `node-${i}`,
              '--gossip', `127.0.0.1:${g}`,
              '--peer', `127.0.0.1:${p}`,
              '--seeds', seeds,
              '--cluster-id', clusterId,
            ],
          }));
          lastError = undefined;
          break;
        } catch (e) {
          lastError = e;
          [pairs[i]] = await freePortPairs(1);
        }
      }
      if (lastError) throw lastError;
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes, stop };
}

/** `GET /stats` of a node's metrics listener, parsed. */
export async function nodeStats(node) {
  const res = await fetch(`http://127.0.0.1:${node.metricsPort}/stats`);
  if (res.status !== 200) throw new Error(`/stats answered ${res.status}`);
  return res.json();
}

/**
 * Until every node sees all `nodes.length` nodes live and has a link session to each of the
 * others (as engine/tests/common/cluster.rs `wait_linked`); rejects after `timeoutMs`.
 */
export async function waitLinked(nodes, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  const n = nodes.length;
  for (const [i, node] of nodes.entries()) {
    for (;;) {
      const c = (await nodeStats(node)).cluster ?? {};
      // `joining` 0: the node takes publishes (it met its cluster; docs/cluster.md).
      if (c.live_nodes === n && c.sessions_up >= n - 1 && (c.joining ?? 0) === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`node-${i} not linked within ${timeoutMs} ms: ${JSON.stringify(c)}`);
      }
      await sleep(100);
    }
  }
}
