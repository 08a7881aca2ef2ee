// The README's "## Quick start", run as written: the code blocks are taken out of README.md
// (by language fence, in order: the pusher-js subscriber `js` block, the npm `pusher` publish
// `js` block, the PyPI `pusher` publish `python` block) and written to files unchanged, except
// for ONE substitution: the port 6001 becomes this test server's ephemeral port. The `js`
// blocks are saved as `.mjs` (ES modules, as the README says to save them), in a temporary
// directory whose `node_modules` links to tests/interop/node_modules (pusher-js, pusher);
// the Python block runs under tests/interop/.venv (PyPI pusher, from requirements.txt).
//
// The subscriber snippet runs under node until the end; once the server lists its channel as
// occupied, each publish snippet runs to completion and the subscriber must print that
// snippet's payload exactly as `console.log(data)` prints it (util.inspect of the object).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import vm from 'node:vm';

import { REPO_ROOT, jsonBody, serverSdk, sleep, startServer } from './helpers.mjs';

const INTEROP = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = process.env.INTEROP_PYTHON || join(INTEROP, '.venv', 'bin', 'python');
const README_PORT = '6001';
const PROC_TIMEOUT_MS = 20000; // a publish snippet must exit within this
const WAIT_MS = 10000; // for the subscription and for each printed payload

/** The fenced code blocks of README.md's "## Quick start" section, as [{lang, code}]. */
function quickStartBlocks() {
  const md = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const m = md.match(/^## Quick start\n([\s\S]*?)(?=^## )/m);
  assert.ok(m, 'README.md has no "## Quick start" section');
  return [...m[1].matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((b) => ({ lang: b[1], code: b[2] }));
}

/** The block with the README's port replaced by ours (the only change made to any snippet). */
function withPort(code, port) {
  assert.ok(code.includes(README_PORT), `snippet does not mention port ${README_PORT}:\n${code}`);
  return code.replaceAll(README_PORT, String(port));
}

/** What `console.log(data)` prints for the payload of the snippet's `trigger(...)` call. */
function printedPayload(code) {
  const m = code.match(/\.trigger\(\s*'[^']*'\s*,\s*'[^']*'\s*,\s*(\{[^}]*\})\s*\)/);
  assert.ok(m, `no trigger(channel, event, {payload}) call in snippet:\n${code}`);
  // A `{ text: 'hello' }` / `{'text': 'hello'}` literal reads the same in JS and Python.
  return inspect(vm.runInNewContext(`(${m[1]})`));
}

const blocks = quickStartBlocks();
const js = blocks.filter((b) => b.lang === 'js');
const py = blocks.filter((b) => b.lang === 'python');
const [subscriberBlock, npmBlock] = js;
const [pythonBlock] = py;

let dir;
let server;
let subscriber; // { proc, lines: string[], stderr: () => string, exited }
const children = new Set();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Run a snippet to completion (bounded); resolves {code, signal, stdout, stderr}. */
function run(cmd, args) {
  return new Promise((res, rej) => {
    const proc = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c) => (stdout += c));
    proc.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), PROC_TIMEOUT_MS);
    proc.once('error', rej);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(proc);
      res({ code, signal, stdout, stderr });
    });
  });
}

/** Wait until the subscriber has printed more than `count` lines; returns line `count`. */
async function nextLine(count) {
  const deadline = Date.now() + WAIT_MS;
  while (subscriber.lines.length <= count) {
    if (subscriber.exited) throw new Error(`subscriber exited: ${subscriber.stderr()}`);
    if (Date.now() > deadline) {
      throw new Error(`subscriber printed nothing new in ${WAIT_MS} ms (stdout so far: ` +
        `${JSON.stringify(subscriber.lines)}, stderr: ${subscriber.stderr()})`);
    }
    await sleep(20);
  }
  return subscriber.lines[count];
}

before(async () => {
  assert.equal(js.length, 2, 'Quick start should have two js blocks: pusher-js, then npm pusher');
  assert.equal(py.length, 1, 'Quick start should have one python block');
  assert.match(subscriberBlock.code, /from 'pusher-js'/, 'the first js block is the subscriber');
  assert.ok(existsSync(PYTHON), `no interop Python at ${PYTHON} (run tests/interop/run.sh)`);

  server = await startServer();
  dir = mkdtempSync(join(tmpdir(), 'raptor-readme-'));
  symlinkSync(join(INTEROP, 'node_modules'), join(dir, 'node_modules'), 'dir');
  writeFileSync(join(dir, 'subscribe.mjs'), withPort(subscriberBlock.code, server.port));
  writeFileSync(join(dir, 'publish.mjs'), withPort(npmBlock.code, server.port));
  writeFileSync(join(dir, 'publish.py'), withPort(pythonBlock.code, server.port));

  const proc = spawn(process.execPath, ['subscribe.mjs'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let err = '';
  subscriber = { proc, lines: [], stderr: () => err, exited: false };
  proc.stdout.on('data', (c) => {
    out += c;
    const parts = out.split('\n');
    out = parts.pop();
    subscriber.lines.push(...parts);
  });
  proc.stderr.on('data', (c) => (err += c));
  proc.once('exit', () => {
    subscriber.exited = true;
    children.delete(proc);
  });

  // Subscribed once the server lists the snippet's channel as occupied.
  const channel = subscriberBlock.code.match(/\.subscribe\('([^']+)'\)/)?.[1];
  assert.ok(channel, 'the subscriber snippet subscribes to no channel');
  const sdk = serverSdk(server.port);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (subscriber.exited) throw new Error(`subscriber snippet exited: ${err}`);
    const body = await jsonBody(sdk.get({ path: '/channels', params: { filter_by_prefix: channel } }));
    if (channel in body.channels) break;
    if (Date.now() > deadline) throw new Error(`${channel} not occupied after ${WAIT_MS} ms: ${err}`);
    await sleep(50);
  }
});

after(async () => {
  if (subscriber && !subscriber.exited) {
    subscriber.proc.kill('SIGTERM');
    await Promise.race([new Promise((r) => subscriber.proc.once('exit', r)), sleep(2000)]);
    if (!subscriber.exited) subscriber.proc.kill('SIGKILL');
  }
  if (server) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const [what, block, cmd, file] of [
  ['npm pusher (node publish.mjs)', () => npmBlock, process.execPath, 'publish.mjs'],
  ['PyPI pusher (python publish.py)', () => pythonBlock, PYTHON, 'publish.py'],
]) {
  test(`README quick start: ${what} reaches the pusher-js subscriber`, async () => {
    const seen = subscriber.lines.length;
    const r = await run(cmd, [file]);
    assert.equal(r.code, 0, `${file} failed (code ${r.code}, signal ${r.signal}):\n${r.stderr}${r.stdout}`);
    assert.equal(await nextLine(seen), printedPayload(block().code));
  });
}
