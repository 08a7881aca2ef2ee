// Shared helpers for the Raptor interop tests driven by third-party clients:
//   * pusher-js 8.6.0 (the official browser/Node client; Node build uses faye-websocket)
//   * pusher 5.3.4 (pusher-http-node, the official server SDK for the HTTP API)
//
// One Raptor process is started per test file (see `startServer`), on an ephemeral port.

import { spawn } from 'node:child_process';
import { after, afterEach, before } from 'node:test';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import PusherJS from 'pusher-js';
import PusherSDK from 'pusher';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '..', '..', '..');

export const APP_ID = '1';
export const APP_KEY = 'app-key';
export const APP_SECRET = 'app-secret';

/** Default timeout for "something should arrive" waits. */
export const WAIT_MS = 5000;

export function raptorBin() {
  return process.env.RAPTOR_BIN || resolve(REPO_ROOT, 'target', 'debug', 'raptor');
}

/**
 * Start `raptor serve --bind 127.0.0.1:0 --shards 2 --metrics-bind off` and resolve once it
 * prints `listening on 127.0.0.1:PORT` on stdout (`bind`: another address, e.g. a port a
 * stopped server had, to restart it where its clients reconnect). The metrics listener is off
 * by default: its default port (9601) would collide between the servers of test files running
 * in parallel; `metricsBind: '127.0.0.1:0'` turns it on at a free port (`metricsPort`).
 * `env` is added to the server's environment.
 * @returns {Promise<{port:number, metricsPort?:number, proc:import('node:child_process').ChildProcess, stop:()=>Promise<void>, output:()=>string}>}
 */
export function startServer({
  timeoutMs = 20000, extraArgs = [], bind = '127.0.0.1:0', metricsBind = 'off', env = {},
} = {}) {
  const bin = raptorBin();
  if (!existsSync(bin)) {
    return Promise.reject(new Error(`raptor binary not found at ${bin} (set RAPTOR_BIN or build it)`));
  }
  const args = ['serve', '--bind', bind, '--shards', '2', '--metrics-bind', metricsBind, ...extraArgs];
  const proc = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUST_LOG: 'warn', ...process.env, ...env },
  });
  let out = '';
  let exited = null;
  const exitPromise = new Promise((res) => {
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      res(exited);
    });
  });

  // If this test process dies without running `after` (crash, uncaught error), do not leave an
  // orphaned server behind.
  const killOnExit = () => {
    if (!exited) proc.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const stop = async () => {
    if (exited) return;
    proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((res) => {
      timer = setTimeout(() => res('timeout'), 5000);
    });
    const outcome = await Promise.race([exitPromise, timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      proc.kill('SIGKILL');
      await exitPromise;
    }
  };

  return new Promise((resolvePromise, rejectPromise) => {
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        stop().finally(() => rejectPromise(err));
      } else {
        resolvePromise(value);
      }
    };
    const timer = setTimeout(
      () => finish(new Error(`raptor did not print "listening on" within ${timeoutMs} ms. Output so far:\n${out}`)),
      timeoutMs,
    );
    const onData = (chunk) => {
      out += chunk.toString();
      const m = out.match(/listening on 127\.0\.0\.1:(\d+)/);
      // With a metrics listener, its line follows the first one.
      const metrics = out.match(/metrics on 127\.0\.0\.1:(\d+)/);
      if (m && (metricsBind === 'off' || metrics)) {
        const metricsPort = metrics ? Number(metrics[1]) : undefined;
        finish(null, { port: Number(m[1]), metricsPort, proc, stop, output: () => out });
      }
    };
    proc.stdout.on('data', onData);
    // Keep draining stderr (logs) so the child never blocks on a full pipe.
    proc.stderr.on('data', (chunk) => {
      out += chunk.toString();
      if (out.length > 1_000_000) out = out.slice(-500_000);
    });
    proc.once('error', (err) => finish(err));
    exitPromise.then(({ code, signal }) =>
      finish(new Error(`raptor exited early (code ${code}, signal ${signal}). Output:\n${out}`)),
    );
  });
}

/** pusher-js options from the reference doc (test-tools.md §2). */
export function clientOptions(port, extra = {}) {
  return {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    ...extra,
  };
}

/**
 * Create a pusher-js client and wait until it is `connected`.
 * Every frame pusher-js decodes is recorded in `client.__frames` as {event, channel, data, user_id?}
 * (pusher-js has already JSON-parsed a string `data` at that point).
 */
export async function connectClient(port, extra = {}, { timeoutMs = WAIT_MS } = {}) {
  const client = new PusherJS(APP_KEY, clientOptions(port, extra));
  client.__frames = [];
  client.__errors = [];
  client.connection.bind('message', (ev) => client.__frames.push(ev));
  client.connection.bind('error', (err) => client.__errors.push(err));
  await new Promise((res, rej) => {
    const timer = setTimeout(() => {
      client.disconnect();
      rej(new Error(`pusher-js did not connect within ${timeoutMs} ms (state ${client.connection.state}); errors: ${JSON.stringify(client.__errors)}`));
    }, timeoutMs);
    if (client.connection.state === 'connected') {
      clearTimeout(timer);
      res();
      return;
    }
    client.connection.bind('connected', () => {
      clearTimeout(timer);
      res();
    });
  });
  return client;
}

/** Subscribe and wait for `pusher:subscription_succeeded`; reject on `pusher:subscription_error` or timeout. */
export function subscribe(client, channelName, { timeoutMs = WAIT_MS } = {}) {
  const channel = client.subscribe(channelName);
  return new Promise((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`no subscription_succeeded for ${channelName} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    channel.bind('pusher:subscription_succeeded', () => {
      clearTimeout(timer);
      res(channel);
    });
    channel.bind('pusher:subscription_error', (err) => {
      clearTimeout(timer);
      rej(new Error(`subscription_error for ${channelName}: ${JSON.stringify(err)}`));
    });
  });
}

/**
 * Collects application events (not pusher:* / pusher_internal:*) received on a channel,
 * in arrival order, as {event, data}. `waitFor(n)` resolves once n events have arrived.
 */
export function collect(channel) {
  const events = [];
  const waiters = [];
  channel.bind_global((event, data) => {
    if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) return;
    events.push({ event, data });
    for (const w of [...waiters]) {
      if (events.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.res(events.slice());
      }
    }
  });
  return {
    events,
    waitFor(n, timeoutMs = WAIT_MS) {
      if (events.length >= n) return Promise.resolve(events.slice());
      return new Promise((res, rej) => {
        const w = { n, res };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          rej(new Error(`expected ${n} events on ${channel.name} within ${timeoutMs} ms, got ${events.length}: ${JSON.stringify(events).slice(0, 2000)}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

/** Application-level frames (not pusher:* / pusher_internal:*) pusher-js decoded, as {event, channel, data}. */
export function appFrames(client) {
  return client.__frames
    .filter((f) => !f.event.startsWith('pusher:') && !f.event.startsWith('pusher_internal:'))
    .map((f) => (f.user_id === undefined
      ? { event: f.event, channel: f.channel, data: f.data }
      : { event: f.event, channel: f.channel, data: f.data, user_id: f.user_id }));
}

/** Disconnect a pusher-js client and wait for the `disconnected` state (bounded). */
export function disconnectClient(client, timeoutMs = 2000) {
  if (!client) return Promise.resolve();
  return new Promise((res) => {
    const state = client.connection.state;
    if (state === 'disconnected' || state === 'initialized' || state === 'failed') {
      client.disconnect();
      res();
      return;
    }
    const timer = setTimeout(res, timeoutMs);
    client.connection.bind('disconnected', () => {
      clearTimeout(timer);
      res();
    });
    client.disconnect();
  });
}

/** The npm `pusher` server SDK pointed at the local server. */
export function serverSdk(port, overrides = {}) {
  return new PusherSDK({
    appId: APP_ID,
    key: APP_KEY,
    secret: APP_SECRET,
    host: '127.0.0.1',
    port: String(port),
    useTLS: false,
    timeout: 10000,
    ...overrides,
  });
}

/** Parse a node-fetch response from the SDK: assert 200 and return the JSON body. */
export async function jsonBody(resOrPromise) {
  const res = await resOrPromise;
  if (res.status !== 200) throw new Error(`expected HTTP 200, got ${res.status}`);
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`response is not JSON: ${JSON.stringify(text)}`);
  }
}

export function sleep(ms) {
  return new Promise((res) => setTimeout(res, ms));
}

/** Unique channel names per test so tests in one file never interfere. */
let counter = 0;
export function uniqueChannel(prefix = 'interop') {
  counter += 1;
  // Fixed-width counter: no generated name is a prefix of another (filter_by_prefix tests).
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${String(counter).padStart(4, '0')}`;
}

/**
 * Track clients created during a test so `closeAll()` can disconnect them in afterEach.
 */
export function clientPool() {
  const clients = [];
  return {
    async connect(port, extra) {
      const c = await connectClient(port, extra);
      clients.push(c);
      return c;
    },
    track(c) {
      clients.push(c);
      return c;
    },
    async closeAll() {
      const cs = clients.splice(0);
      await Promise.all(cs.map((c) => disconnectClient(c)));
    },
  };
}

/**
 * The usual file set-up: one server and one npm SDK client for the whole file, and a client
 * pool closed after every test. Registers the node:test hooks; `onStart({server, sdk})` runs
 * once the server is up, so the file can keep its own `server`/`sdk` variables.
 * @returns the pool
 */
export function useServer(onStart, { config } = {}) {
  const pool = clientPool();
  let server;
  // `config`: a TOML configuration the server starts with (a temporary file).
  const configPath = config && join(tmpdir(), `raptor-interop-${process.pid}-${Math.random().toString(36).slice(2)}.toml`);
  before(async () => {
    if (configPath) writeFileSync(configPath, config);
    server = await startServer({ extraArgs: configPath ? ['--config', configPath] : [] });
    onStart({ server, sdk: serverSdk(server.port) });
  });
  afterEach(async () => {
    await pool.closeAll();
  });
  after(async () => {
    await pool.closeAll();
    if (server) await server.stop();
    if (configPath) rmSync(configPath, { force: true });
  });
  return pool;
}

// ---------------------------------------------------------------------------------------------
// Authorization and waiting helpers (private/presence channels, sign-in, client events).
// ---------------------------------------------------------------------------------------------

/**
 * pusher-js options whose channel authorization (and, with `user`, user authentication) is done
 * in-process by the npm SDK, through `channelAuthorization.customHandler` /
 * `userAuthentication.customHandler` (test-tools.md §2.3). No HTTP auth endpoint is involved.
 *
 * @param {import('pusher')} sdk  the SDK whose secret signs (a wrong secret gives a bad signature)
 * @param {{presence?: {user_id:string, user_info?:any}, user?: {id:string, user_info?:any, watchlist?:string[]}}} who
 *   `presence` is passed as `data` to authorizeChannel for `presence-*` channels;
 *   `user` is passed to authenticateUser on `pusher.signin()`.
 * @returns pusher-js options; `opts.__authCalls` records every handler call.
 */
export function authOptions(sdk, { presence, user } = {}) {
  const calls = [];
  const opts = {
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const auth = channelName.startsWith('presence-')
            ? sdk.authorizeChannel(socketId, channelName, presence)
            : sdk.authorizeChannel(socketId, channelName);
          // A copy: pusher-js deletes `shared_secret` from the object it is given.
          calls.push({ kind: 'channel', socketId, channelName, auth: { ...auth } });
          callback(null, auth);
        } catch (e) {
          calls.push({ kind: 'channel', socketId, channelName, error: String(e) });
          callback(e, null);
        }
      },
    },
  };
  if (user) {
    opts.userAuthentication = {
      customHandler: ({ socketId }, callback) => {
        try {
          const auth = sdk.authenticateUser(socketId, user);
          calls.push({ kind: 'user', socketId, auth });
          callback(null, auth);
        } catch (e) {
          calls.push({ kind: 'user', socketId, error: String(e) });
          callback(e, null);
        }
      },
    };
  }
  Object.defineProperty(opts, '__authCalls', { value: calls, enumerable: false });
  return opts;
}

/**
 * Resolve with the first frame (as recorded in `client.__frames`, already seen or future) for
 * which `pred(frame)` is true; reject after `timeoutMs` naming `what`.
 */
export function waitFrame(client, pred, what, timeoutMs = WAIT_MS) {
  const found = client.__frames.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((res, rej) => {
    const onMessage = (f) => {
      if (!pred(f)) return;
      clearTimeout(timer);
      client.connection.unbind('message', onMessage);
      res(f);
    };
    const timer = setTimeout(() => {
      client.connection.unbind('message', onMessage);
      rej(new Error(`no frame "${what}" within ${timeoutMs} ms; frames: ${JSON.stringify(client.__frames).slice(0, 2000)}`));
    }, timeoutMs);
    client.connection.bind('message', onMessage);
  });
}

/**
 * Record every emission of `eventName` on a pusher-js Dispatcher (channel, `client.user`,
 * `client.user.watchlist`, Echo channel...) as `[data, metadata]`. `waitFor(n)` resolves once
 * n calls have been recorded.
 */
export function recorder(emitter, eventName) {
  const calls = [];
  const waiters = [];
  emitter.bind(eventName, (data, metadata) => {
    calls.push(metadata === undefined ? [data] : [data, metadata]);
    for (const w of [...waiters]) {
      if (calls.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.res(calls.slice());
      }
    }
  });
  return {
    calls,
    waitFor(n, timeoutMs = WAIT_MS) {
      if (calls.length >= n) return Promise.resolve(calls.slice());
      return new Promise((res, rej) => {
        const w = { n, res };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          rej(new Error(`expected ${n} "${eventName}" calls within ${timeoutMs} ms, got ${calls.length}: ${JSON.stringify(calls).slice(0, 2000)}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

/** Subscribe and resolve with the first of subscription_succeeded / subscription_error / timeout. */
export function subscriptionOutcome(client, channelName, timeoutMs = WAIT_MS) {
  const channel = client.subscribe(channelName);
  return new Promise((res) => {
    const timer = setTimeout(() => res({ kind: 'timeout', channel }), timeoutMs);
    const done = (o) => {
      clearTimeout(timer);
      res({ ...o, channel });
    };
    channel.bind('pusher:subscription_succeeded', (data) => done({ kind: 'succeeded', data }));
    channel.bind('pusher:subscription_error', (data) => done({ kind: 'subscription_error', data }));
  });
}

/**
 * Poll `fn` (async) until it returns a value deep-equal (JSON) to `expected`, or the timeout;
 * returns the last value so the caller asserts on it.
 */
export async function pollUntil(fn, expected, timeoutMs = 3000, intervalMs = 50) {
  const want = JSON.stringify(expected);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (JSON.stringify(value) === want || Date.now() > deadline) return value;
    await sleep(intervalMs);
  }
}

/** `GET /apps/1/channels/{name}?info=...` through the npm SDK; returns the parsed body. */
export function channelInfo(sdk, name, info) {
  return jsonBody(sdk.get({ path: `/channels/${name}`, params: info ? { info } : {} }));
}

/** Wait until the pusher-js connection is in one of `states`; reject after the timeout. */
export function waitState(client, states, timeoutMs = WAIT_MS) {
  if (states.includes(client.connection.state)) return Promise.resolve(client.connection.state);
  return new Promise((res, rej) => {
    const onChange = ({ current }) => {
      if (!states.includes(current)) return;
      clearTimeout(timer);
      client.connection.unbind('state_change', onChange);
      res(current);
    };
    const timer = setTimeout(() => {
      client.connection.unbind('state_change', onChange);
      rej(new Error(`connection did not reach ${states.join('/')} within ${timeoutMs} ms (state ${client.connection.state})`));
    }, timeoutMs);
    client.connection.bind('state_change', onChange);
  });
}
