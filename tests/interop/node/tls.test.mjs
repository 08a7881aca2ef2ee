// TLS with `[tls] only = true`: pusher-js 8.6.0 first connects with ws://, is told 4000, and
// must come back with wss:// on its own; the npm `pusher` 5.3.4 SDK publishes over https://.
// Both verify the server's certificate: a self-signed one made here with the openssl CLI and
// trusted through NODE_EXTRA_CA_CERTS, which Node reads only at start, so the clients run in a
// child process.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServer } from './helpers.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

let dir;
let server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'raptor-interop-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  const config = join(dir, 'raptor.toml');
  writeFileSync(
    config,
    `[tls]\ncert = "${join(dir, 'cert.pem')}"\nkey = "${join(dir, 'key.pem')}"\nonly = true\n`,
  );
  server = await startServer({ extraArgs: ['--config', config] });
});

after(async () => {
  if (server) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Runs in the child: connect over ws:// (refused with 4000), end up on wss://, subscribe, and
// receive an event the SDK publishes over https://. Prints one JSON line.
const CLIENT = `
import PusherJS from 'pusher-js';
import PusherSDK from 'pusher';
const port = Number(process.env.RAPTOR_PORT);
const within = (p, what) => Promise.race([p, new Promise((_, no) =>
  setTimeout(() => no(new Error('timed out: ' + what)), 10000))]);
const client = new PusherJS('app-key', {
  cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, wssPort: port, forceTLS: false,
  enabledTransports: ['ws'], disableStats: true,
});
const errors = [];
client.connection.bind('error', (e) => errors.push(e?.error?.data?.code ?? null));
await within(new Promise((ok) => client.connection.bind('connected', ok)), 'connected');
const channel = client.subscribe('tls-only');
await within(new Promise((ok) => channel.bind('pusher:subscription_succeeded', ok)), 'subscribed');
const got = new Promise((ok) => channel.bind('e', ok));
const sdk = new PusherSDK({ appId: '1', key: 'app-key', secret: 'app-secret',
  host: '127.0.0.1', port: String(port), useTLS: true });
const res = await sdk.trigger('tls-only', 'e', { over: 'https' });
const data = await within(got, 'event');
console.log(JSON.stringify({ usingTLS: client.connection.usingTLS, errors, status: res.status, data }));
client.disconnect();
process.exit(0);
`;

function runClient() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CLIENT], {
      cwd: HERE,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem'), RAPTOR_PORT: String(server.port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`client exited ${code}: ${err}\n${out}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

test('pusher-js refused with 4000 over ws:// reconnects with wss://; the SDK publishes over https://', async () => {
  const r = await runClient();
  assert.equal(r.usingTLS, true);
  assert.deepEqual(r.errors, [4000]);
  assert.equal(r.status, 200);
  assert.deepEqual(r.data, { over: 'https' });
});
