'use strict';
// Hand-off and fail-over latency, elect-node beside proper-lockfile, in one run.
//
//   hand-off:  the holder releases  -> the waiting process has the lock
//   fail-over: SIGKILL of the holder -> the waiting process has the lock
//
// Each latency is measured between two processes on CLOCK_MONOTONIC
// (process.hrtime), from just before the release call (or the kill) to
// just after the waiter's acquire resolved. The waiter starts waiting
// SETTLE_MS before each release or kill. proper-lockfile polls (every
// POLL_MS, default 10 ms) and notices a dead holder when its lock is
// stale, at the least 2 s (its default is 10 s).
//
//   node bench/handoff.js            (npm run bench)
//   ROUNDS=100 FAILOVER_ROUNDS=20 PL_FAILOVER_ROUNDS=5 POLL_MS=10 node bench/handoff.js
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROUNDS = Number(process.env.ROUNDS ?? 40);
const FAILOVER_ROUNDS = Number(process.env.FAILOVER_ROUNDS ?? 15);
const PL_FAILOVER_ROUNDS = Number(process.env.PL_FAILOVER_ROUNDS ?? 5);
const POLL_MS = Number(process.env.POLL_MS ?? 10);
const SETTLE_MS = Number(process.env.SETTLE_MS ?? 30);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function participant(lib, dir) {
  const child = fork(path.join(__dirname, 'participant.js'), [lib, dir, String(POLL_MS)]);
  const p = { child, queue: [], waiters: [] };
  child.on('message', (m) => {
    p.queue.push(m);
    p.waiters.splice(0).forEach((f) => f());
  });
  p.next = (ev) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${lib}: no ${ev} within 30 s`)), 30000);
      const look = () => {
        const i = p.queue.findIndex((m) => m.ev === ev);
        if (i >= 0) {
          clearTimeout(timer);
          resolve(p.queue.splice(i, 1)[0]);
        } else p.waiters.push(look);
      };
      look();
    });
  return p;
}

const ms = (a, b) => Number(BigInt(b) - BigInt(a)) / 1e6;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function handoff(lib, dir) {
  let [holder, waiter] = [participant(lib, dir), participant(lib, dir)];
  await Promise.all([holder.next('ready'), waiter.next('ready')]);
  holder.child.send('hold');
  await holder.next('held');
  const samples = [];
  for (let i = 0; i < ROUNDS; i++) {
    waiter.child.send('wait');
    await waiter.next('waiting');
    await sleep(SETTLE_MS);
    holder.child.send('release');
    const [released, got] = await Promise.all([holder.next('released'), waiter.next('got')]);
    samples.push(ms(released.at, got.at));
    [holder, waiter] = [waiter, holder];
  }
  holder.child.kill();
  waiter.child.kill();
  return samples;
}

async function failover(lib, dir, rounds) {
  const waiter = participant(lib, dir);
  await waiter.next('ready');
  const samples = [];
  for (let i = 0; i < rounds; i++) {
    const holder = participant(lib, dir);
    await holder.next('ready');
    holder.child.send('hold');
    await holder.next('held');
    waiter.child.send('wait');
    await waiter.next('waiting');
    await sleep(SETTLE_MS);
    const killedAt = String(process.hrtime.bigint());
    holder.child.kill('SIGKILL');
    const got = await waiter.next('got');
    samples.push(ms(killedAt, got.at));
    waiter.child.send('release');
    await waiter.next('released');
  }
  waiter.child.kill();
  return samples;
}

async function main() {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'elect-node-bench-'));
  const dirOf = (name) => {
    const d = path.join(base, name);
    fs.mkdirSync(d, { mode: 0o700 });
    return d;
  };
  try {
    console.log(`node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}; ` +
      `proper-lockfile polls every ${POLL_MS} ms, stale after 2000 ms`);
    const results = {};
    results.handoff = {
      elect: await handoff('elect', dirOf('h-elect')),
      pl: await handoff('proper-lockfile', dirOf('h-pl')),
    };
    results.failover = {
      elect: await failover('elect', dirOf('f-elect'), FAILOVER_ROUNDS),
      pl: await failover('proper-lockfile', dirOf('f-pl'), PL_FAILOVER_ROUNDS),
    };
    const row = (what, r) => {
      const e = median(r.elect);
      const p = median(r.pl);
      console.log(
        `${what.padEnd(9)}  elect-node ${e.toFixed(3).padStart(9)} ms (n=${r.elect.length})` +
          `   proper-lockfile ${p.toFixed(3).padStart(9)} ms (n=${r.pl.length})   ratio ${(p / e).toFixed(1)}x`,
      );
    };
    console.log('median latency until the waiting process holds the lock:');
    row('hand-off', results.handoff);
    row('fail-over', results.failover);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
