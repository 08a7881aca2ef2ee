// What open dashboards cost the server: one raptor node, its CPU time (utime + stime from
// /proc/PID/stat) over a window with no dashboard open, then with N dashboard pages open in
// headless Chromium (each signed in, on the Overview with the live stream: one overview a
// second, the 15-minute series every 5 s), alternating, in the same invocation.
//
// Usage (from the repository root, after `cd tests/dashboard && npm ci` or run.sh once):
//   node tests/dashboard/cost.mjs [--secs 20] [--pages 5] [--rounds 2] [--settle 3]
//   RAPTOR_BIN=target/release/raptor node tests/dashboard/cost.mjs     (the default binary is
//   target/release/raptor when it exists, else target/debug/raptor)
//
// Prints one line per window and a summary: CPU ms per second without and with the pages,
// the ratio and the cost per page. utime + stime come in clock ticks (10 ms: over 20 s, steps
// of 0.5 ms/s), so each line also gives the threads' run time from /proc/PID/task/*/schedstat
// (nanoseconds; the server's threads live as long as it does).

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { REPO_ROOT, configToml, launchBrowser, randomPassword, sleep, startNode, stopNode, waitAdmin } from './lib.mjs';

const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECS = opt('secs', 20);
const PAGES = opt('pages', 5);
const ROUNDS = opt('rounds', 2);
const SETTLE = opt('settle', 3);

if (!process.env.RAPTOR_BIN) {
  const rel = join(REPO_ROOT, 'target', 'release', 'raptor');
  process.env.RAPTOR_BIN = existsSync(rel) ? rel : join(REPO_ROOT, 'target', 'debug', 'raptor');
}
const TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** utime + stime of a process, in ms. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return ((Number(f[11]) + Number(f[12])) * 1000) / TCK; // fields 14 and 15
}

/** Run time of every thread of a process, in ms (schedstat: nanoseconds on a CPU). */
function schedMs(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch (e) {
      /* the thread ended */
    }
  }
  return ns / 1e6;
}

function rssMiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** {stat, sched}: CPU ms per second over one window, by /proc/PID/stat and by schedstat. */
async function measure(pid) {
  const c0 = cpuMs(pid);
  const s0 = schedMs(pid);
  const t0 = process.hrtime.bigint();
  await sleep(SECS * 1000);
  const c1 = cpuMs(pid);
  const s1 = schedMs(pid);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { stat: (c1 - c0) / secs, sched: (s1 - s0) / secs };
}

const fmt = (m) => `${m.stat.toFixed(2)} CPU ms/s (utime+stime), ${m.sched.toFixed(3)} (schedstat)`;

const password = randomPassword();
const node = await startNode({ name: 'cost', toml: configToml([`password = "${password}"`]) });
let browser;
try {
  await waitAdmin(node, password);
  const version = execFileSync(process.env.RAPTOR_BIN, ['--version']).toString().trim();
  console.log(`server: ${process.env.RAPTOR_BIN} (${version}), pid ${node.proc.pid}, 2 shards, no clients`);
  console.log(`windows of ${SECS} s, ${PAGES} pages, ${ROUNDS} rounds, ${SETTLE} s settling before each window; CLK_TCK ${TCK}`);

  browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const login = await ctx.request.post(`${node.base}/admin/api/login`, {
    headers: { 'X-Raptor-CSRF': '1', 'Content-Type': 'application/json' },
    data: JSON.stringify({ password }),
  });
  if (login.status() !== 200) throw new Error(`login: ${login.status()} ${await login.text()}`);

  const results = { idle: [], pages: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    // Without dashboards.
    await sleep(SETTLE * 1000);
    const idle = await measure(node.proc.pid);
    results.idle.push(idle);
    console.log(`round ${round}  no dashboard       ${fmt(idle)}`);

    // With PAGES dashboards, each live.
    const pages = [];
    for (let i = 0; i < PAGES; i++) {
      const p = await ctx.newPage();
      await p.goto(`${node.base}/dashboard`);
      pages.push(p);
    }
    for (const p of pages) {
      await p.waitForFunction(() => document.querySelector('[data-testid=live-status]').textContent === 'live', null, { timeout: 10000 });
    }
    await sleep(SETTLE * 1000);
    const before = await Promise.all(pages.map((p) => p.textContent('[data-testid=last-update]')));
    const busy = await measure(node.proc.pid);
    const after = await Promise.all(pages.map((p) => p.textContent('[data-testid=last-update]')));
    const status = await Promise.all(pages.map((p) => p.textContent('[data-testid=live-status]')));
    if (status.some((s) => s !== 'live') || after.some((a, i) => a === before[i])) {
      throw new Error(`a page was not live during the window: ${JSON.stringify({ status, before, after })}`);
    }
    results.pages.push(busy);
    console.log(`round ${round}  ${PAGES} dashboards live  ${fmt(busy)}   (server RSS ${rssMiB(node.proc.pid).toFixed(1)} MiB)`);
    for (const p of pages) await p.close();
  }

  const mean = (a, k) => a.reduce((x, y) => x + y[k], 0) / a.length;
  console.log('');
  for (const [k, what] of [['stat', 'utime+stime (/proc/PID/stat)'], ['sched', 'run time (/proc/PID/task/*/schedstat)']]) {
    const idle = mean(results.idle, k);
    const busy = mean(results.pages, k);
    console.log(`${what}:`);
    console.log(`  no dashboard:         ${idle.toFixed(3)} CPU ms/s (${(idle / 10).toFixed(3)}% of one core)  [${results.idle.map((x) => x[k].toFixed(3)).join(', ')}]`);
    console.log(`  ${PAGES} dashboards live:   ${busy.toFixed(3)} CPU ms/s (${(busy / 10).toFixed(3)}% of one core)  [${results.pages.map((x) => x[k].toFixed(3)).join(', ')}]`);
    console.log(`  ratio:                ${(busy / idle).toFixed(2)}x`);
    console.log(`  added per dashboard:  ${((busy - idle) / PAGES).toFixed(3)} CPU ms/s`);
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  await stopNode(node);
}
