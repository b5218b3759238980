'use strict';
// The framework's demo with Node's cluster module: four workers compete for
// `demo-student.echo`, which has two tickets; each owner prints
// `Hello World, pid: N` every 2 s. After a few seconds the primary SIGKILLs
// one owner and prints how long a waiting worker took to own the freed
// slot; then every worker resigns and the demo exits.
//
//   node examples/cluster.js        (npm run demo)
//
// While it runs, `elect status demo-student.echo` in another terminal shows
// who holds the tickets. ELECT_DIR chooses the run directory.
const cluster = require('node:cluster');
const { election } = require('..');

const RESOURCE = 'demo-student.echo';
const TICKETS = 2;
const WORKERS = 4;
const KILL_AFTER_MS = 5000;
const STOP_AFTER_KILL_MS = 3000;

const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC: comparable across processes

if (cluster.isPrimary) {
  primary();
} else {
  worker();
}

function worker() {
  let timer = null;
  const campaign = election.obtain(
    RESOURCE,
    (release, ticket) => {
      process.send({ ev: 'won', pid: process.pid, slot: ticket.slot, at: String(now()) });
      console.log(`worker ${process.pid}: owner of slot ${ticket.slot} (token ${ticket.token})`);
      timer = setInterval(() => console.log(`Hello World, pid: ${process.pid}`), 2000);
    },
    async (ending) => {
      clearInterval(timer);
      console.log(`worker ${process.pid}: cleanup (${ending})`);
    },
    { tickets: TICKETS, label: `elect-node demo worker ${cluster.worker.id}` },
  );
  process.on('message', async (m) => {
    if (m === 'stop') {
      await campaign.resign();
      process.disconnect(); // nothing else keeps the worker alive: it exits
    }
  });
}

function primary() {
  console.log(`demo: starting ${WORKERS} workers for ${JSON.stringify(RESOURCE)} with ${TICKETS} tickets`);
  const owners = new Map(); // pid -> slot
  let killedAt = null;
  let victim = null;
  let takeover = null;
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('message', (w, m) => {
    if (m.ev !== 'won') return;
    owners.set(m.pid, m.slot);
    if (killedAt !== null && takeover === null && m.pid !== victim) {
      takeover = Number(BigInt(m.at) - killedAt) / 1e6;
      console.log(`demo: pid ${m.pid} took slot ${m.slot} ${takeover.toFixed(1)} ms after the kill`);
    }
  });
  cluster.on('exit', (w, code, signal) => {
    owners.delete(w.process.pid);
    if (signal) console.log(`demo: worker ${w.process.pid} ended by ${signal}`);
  });

  setTimeout(() => {
    const [pid, slot] = [...owners][0] ?? [];
    if (pid === undefined) {
      console.error('demo: no owner after 5 s');
      process.exitCode = 1;
      return stop();
    }
    victim = pid;
    console.log(`demo: SIGKILL to pid ${pid}, owner of slot ${slot}`);
    owners.delete(pid);
    killedAt = now();
    process.kill(pid, 'SIGKILL');
    setTimeout(stop, STOP_AFTER_KILL_MS);
  }, KILL_AFTER_MS);

  function stop() {
    if (takeover === null) {
      console.error('demo: no worker took over the killed owner\'s slot');
      process.exitCode = 1;
    }
    console.log('demo: stopping the workers');
    for (const w of Object.values(cluster.workers)) w.send('stop');
    // The primary exits once every worker has exited.
  }
}
