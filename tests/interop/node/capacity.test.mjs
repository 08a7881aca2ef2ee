// Capacity refusals pusher-js understands: an app at its connection quota refuses a new
// pusher-js 8.6.0 client with 4100 ("reconnect after backoff"), so the client keeps retrying
// on its own and gets in once a slot frees. (With Pusher's 4004 it would give up for good.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import PusherJS from 'pusher-js';
import { APP_ID, APP_KEY, APP_SECRET, clientOptions, connectClient, sleep, startServer } from './helpers.mjs';

let dir;
let server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'raptor-interop-capacity-'));
  const config = join(dir, 'raptor.toml');
  writeFileSync(
    config,
    `[[apps]]\nid = "${APP_ID}"\nkey = "${APP_KEY}"\nsecret = "${APP_SECRET}"\nmax_connections = 1\n`,
  );
  server = await startServer({ extraArgs: ['--config', config] });
});

after(async () => {
  if (server) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function until(what, cond, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('a client refused by the connection quota backs off and connects once a slot frees', async () => {
  const first = await connectClient(server.port);
  const second = new PusherJS(APP_KEY, clientOptions(server.port));
  const errors = [];
  const states = [];
  second.connection.bind('error', (e) => errors.push(e));
  second.connection.bind('state_change', (s) => states.push(s.current));
  try {
    await until('the quota refusal', () => errors.length > 0, 5000);
    assert.deepEqual(errors[0].error, {
      type: 'PusherError',
      data: { code: 4100, message: 'Over connection quota' },
    });
    // Refused twice at least while the slot is taken: it keeps trying, it does not give up.
    await until('a second refusal', () => errors.length >= 2, 5000);
    assert.notEqual(second.connection.state, 'connected');
    assert.ok(!states.includes('failed'), `states: ${states}`);
    first.disconnect();
    await until('the retry to get in', () => second.connection.state === 'connected', 10000);
  } finally {
    first.disconnect();
    second.disconnect();
  }
});
