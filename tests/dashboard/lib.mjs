// Shared helpers for the dashboard tests: real raptor processes (one node or a cluster) on
// 127.0.0.1, the admin API with a Bearer credential, signed HTTP API publishes, plain
// Pusher-protocol WebSocket clients (the `ws` package), and headless Chromium.

import { spawn } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '..', '..');
export const SCREENSHOTS = join(HERE, 'screenshots');

export const APP_ID = '1';
export const APP_KEY = 'app-key';
export const APP_SECRET = 'app-secret';

/** How long "the page shows it" may take (the brief: within 3 s). */
export const SEE_MS = 3000;

export function raptorBin() {
  return process.env.RAPTOR_BIN || resolve(REPO_ROOT, 'target', 'debug', 'raptor');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A random admin password (≥ 12 characters, as docs/dashboard.md requires). */
export const randomPassword = () => `pw-${randomBytes(12).toString('hex')}`;

/** The config file: an [admin] table (given as TOML lines) and the default app. */
export function configToml(adminLines) {
  return `[admin]\n${adminLines.join('\n')}\n\n[[apps]]\nid = "${APP_ID}"\nkey = "${APP_KEY}"\nsecret = "${APP_SECRET}"\n`;
}

// ------------------------------------------------------------------ ports

async function udpFree(port) {
  return new Promise((res) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => res(false));
    s.bind(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

async function tcpFree(port) {
  return new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** `n` (gossip UDP, peer TCP) port pairs below the ephemeral range, free right now. */
export async function freePortPairs(n) {
  const out = [];
  const taken = new Set();
  for (let tries = 0; out.length < n; tries++) {
    if (tries > 500) throw new Error('no free port pairs below 32768');
    const g = 20000 + Math.floor(Math.random() * 9000);
    const p = g + 1;
    if (taken.has(g) || taken.has(p)) continue;
    if ((await udpFree(g)) && (await tcpFree(p))) {
      out.push([g, p]);
      taken.add(g).add(p);
    }
  }
  return out;
}

// ------------------------------------------------------------------ processes

const running = new Set();
process.once('exit', () => {
  for (const n of running) n.proc.kill('SIGKILL');
});

/**
 * Starts `raptor serve --bind 127.0.0.1:0 --shards 2 --no-pin ...args` with a config file
 * holding `toml`, and resolves once it printed its ready line(s): `raptor listening on
 * 127.0.0.1:PORT with N shards`, then `raptor metrics on ADDR` unless `--metrics-bind off`.
 */
export async function startNode({ name = 'node', toml, args = [], env = {}, timeoutMs = 20000 }) {
  const bin = raptorBin();
  if (!existsSync(bin)) throw new Error(`raptor binary not found at ${bin} (set RAPTOR_BIN or build it)`);
  const dir = mkdtempSync(join(tmpdir(), 'raptor-dash-'));
  const config = join(dir, 'raptor.toml');
  writeFileSync(config, toml);
  const metricsOff = !args.includes('--metrics-bind') || args[args.indexOf('--metrics-bind') + 1] === 'off';
  const full = ['serve', '--bind', '127.0.0.1:0', '--shards', '2', '--no-pin', '--config', config, ...args];
  if (!args.includes('--metrics-bind')) full.push('--metrics-bind', 'off');
  const proc = spawn(bin, full, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RAPTOR_LOG: process.env.RAPTOR_LOG || 'warn', ...env },
  });
  const node = { name, proc, dir, port: 0, metrics: null, out: '', log: '', exited: null };
  node.exit = new Promise((res) => proc.once('exit', (code, signal) => {
    node.exited = { code, signal };
    running.delete(node);
    res(node.exited);
  }));
  running.add(node);
  proc.stderr.on('data', (c) => {
    node.log += c;
    if (node.log.length > 400000) node.log = node.log.slice(-200000);
  });
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${name} printed no ready line within ${timeoutMs} ms:\n${node.out}\n${node.log}`)), timeoutMs);
    proc.stdout.on('data', (c) => {
      node.out += c;
      const m = node.out.match(/raptor listening on 127\.0\.0\.1:(\d+) with \d+ shards/);
      const mm = node.out.match(/raptor metrics on (\S+)/);
      if (m && (metricsOff || mm)) {
        node.port = Number(m[1]);
        if (mm) node.metrics = mm[1];
        clearTimeout(timer);
        res();
      }
    });
    node.exit.then((e) => {
      clearTimeout(timer);
      rej(new Error(`${name} exited early (${JSON.stringify(e)}):\n${node.out}\n${node.log}`));
    });
  });
  node.base = `http://127.0.0.1:${node.port}`;
  return node;
}

/** SIGTERM, then SIGKILL after 3 s; removes the node's temp dir. */
export async function stopNode(node) {
  if (!node) return;
  if (!node.exited) {
    node.proc.kill('SIGTERM');
    const t = setTimeout(() => node.proc.kill('SIGKILL'), 3000);
    await node.exit;
    clearTimeout(t);
  }
  rmSync(node.dir, { recursive: true, force: true });
}

/**
 * `n` cluster nodes n1..nN: `--node-id nX --gossip 127.0.0.1:G --peer 127.0.0.1:P --seeds
 * <every gossip address>`, RAPTOR_CLUSTER_SECRET random, the same config file contents.
 */
export async function startCluster(n, toml) {
  const secret = randomBytes(24).toString('hex');
  const pairs = await freePortPairs(n);
  const seeds = pairs.map(([g]) => `127.0.0.1:${g}`).join(',');
  const nodes = [];
  try {
    for (let i = 0; i < n; i++) {
      const [g, p] = pairs[i];
      nodes.push(await startNode({
        name: `n${i + 1}`,
        toml,
        args: ['--node-id', `n${i + 1}`, '--gossip', `127.0.0.1:${g}`, '--peer', `127.0.0.1:${p}`, '--seeds', seeds],
        env: { RAPTOR_CLUSTER_SECRET: secret },
      }));
    }
  } catch (e) {
    await Promise.all(nodes.map(stopNode));
    throw e;
  }
  return nodes;
}

// ------------------------------------------------------------------ HTTP

/** fetch that resolves to {status, headers, text, json}. */
export async function http(url, { method = 'GET', headers = {}, body } = {}) {
  const res = await fetch(url, { method, headers, body, redirect: 'manual' });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (e) {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** GET an admin API route with `Authorization: Bearer <password>`; throws unless 200. */
export async function admin(node, path, password) {
  const r = await http(`${node.base}${path}`, { headers: { Authorization: `Bearer ${password}` } });
  if (r.status !== 200) throw new Error(`GET ${path} on ${node.name}: ${r.status} ${r.text}`);
  return r.json;
}

/** Until the node's admin API answers the overview (200) to the Bearer credential. */
export async function waitAdmin(node, password, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await http(`${node.base}/admin/api/overview`, { headers: { Authorization: `Bearer ${password}` } });
    if (r.status === 200) return r.json;
    if (Date.now() > deadline) throw new Error(`${node.name}: overview still ${r.status} ${r.text} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Until every node's overview lists `n` nodes, all `ready`. */
export async function waitClusterSize(nodes, n, password, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (const node of nodes) {
    for (;;) {
      let last = null;
      try {
        last = await admin(node, '/admin/api/overview', password);
        if (last.nodes.length === n && last.nodes.every((x) => x.state === 'ready')) break;
      } catch (e) {
        last = e.message;
      }
      if (Date.now() > deadline) throw new Error(`${node.name} does not see ${n} ready nodes: ${JSON.stringify(last)}`);
      await sleep(150);
    }
  }
}

/** A publish through the signed HTTP API (POST /apps/{id}/events), as the Pusher SDKs sign it. */
export async function publish(node, channel, event, data) {
  const body = JSON.stringify({ name: event, channels: [channel], data });
  const path = `/apps/${APP_ID}/events`;
  const params = {
    auth_key: APP_KEY,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    body_md5: createHash('md5').update(body).digest('hex'),
  };
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const sig = createHmac('sha256', APP_SECRET).update(`POST\n${path}\n${query}`).digest('hex');
  const r = await http(`${node.base}${path}?${query}&auth_signature=${sig}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
  });
  if (r.status !== 200) throw new Error(`publish on ${node.name}: ${r.status} ${r.text}`);
}

// ------------------------------------------------------------------ WebSocket clients

const hmacHex = (s) => createHmac('sha256', APP_SECRET).update(s).digest('hex');

/**
 * A Pusher-protocol client on `node`: resolves once `pusher:connection_established` arrived.
 * `frames` collects every frame (parsed, with `data` parsed when it is a JSON string);
 * `closed` resolves to {code, reason} when the server closes.
 */
export async function wsClient(node, timeoutMs = 5000) {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/app/${APP_KEY}?protocol=7&client=js&version=8.6.0&flash=false`);
  const c = { ws, frames: [], socketId: null, waiters: [] };
  c.closed = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason: String(reason) })));
  ws.on('message', (raw) => {
    let f;
    try {
      f = JSON.parse(String(raw));
      if (typeof f.data === 'string') {
        try {
          f.data = JSON.parse(f.data);
        } catch (e) {
          /* a plain string */
        }
      }
    } catch (e) {
      return;
    }
    c.frames.push(f);
    for (const w of c.waiters.slice()) {
      if (w.pred(f)) {
        c.waiters.splice(c.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.res(f);
      }
    }
  });
  c.waitFor = (pred, what, ms = 5000) => {
    const seen = c.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const w = { pred, res };
      w.timer = setTimeout(() => {
        c.waiters.splice(c.waiters.indexOf(w), 1);
        rej(new Error(`no ${what} within ${ms} ms; frames: ${JSON.stringify(c.frames).slice(0, 1500)}`));
      }, ms);
      c.waiters.push(w);
    });
  };
  c.send = (event, data) => ws.send(JSON.stringify({ event, data }));
  c.close = () => ws.close();
  const est = await c.waitFor((f) => f.event === 'pusher:connection_established', 'connection_established', timeoutMs);
  c.socketId = est.data.socket_id;
  return c;
}

export async function subscribe(c, channel, channelData) {
  let auth = '';
  const data = { channel, auth };
  if (channel.startsWith('presence-')) {
    const cd = JSON.stringify(channelData);
    data.auth = `${APP_KEY}:${hmacHex(`${c.socketId}:${channel}:${cd}`)}`;
    data.channel_data = cd;
  } else if (channel.startsWith('private-')) {
    data.auth = `${APP_KEY}:${hmacHex(`${c.socketId}:${channel}`)}`;
  }
  c.send('pusher:subscribe', data);
  await c.waitFor((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel, `subscription_succeeded on ${channel}`);
}

/** `pusher:signin` as user `id`; resolves on `pusher:signin_success`. */
export async function signin(c, id) {
  const userData = JSON.stringify({ id });
  c.send('pusher:signin', { auth: `${APP_KEY}:${hmacHex(`${c.socketId}::user::${userData}`)}`, user_data: userData });
  await c.waitFor((f) => f.event === 'pusher:signin_success', `signin_success for ${id}`);
}

// ------------------------------------------------------------------ browser

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Launch flags that work here (shared/reference/test-tools.md §5). */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** Records console errors and page errors of a page into `list` ({kind, text, url}). */
export function watchErrors(page, list) {
  page.on('console', (m) => {
    if (m.type() === 'error') list.push({ kind: 'console', text: m.text(), url: m.location().url || '' });
  });
  page.on('pageerror', (e) => list.push({ kind: 'pageerror', text: String(e && e.stack || e), url: '' }));
  return list;
}

export { readFileSync };
