'use strict';
// One process of the bench: takes and gives up one lock with elect-node or
// proper-lockfile as the parent says over IPC, and reports the monotonic
// time (CLOCK_MONOTONIC, comparable across processes) of each step.
//   argv: lib ('elect' | 'proper-lockfile'), dir, poll ms (proper-lockfile)
const path = require('node:path');

const [lib, dir, pollMs] = process.argv.slice(2);
const now = () => String(process.hrtime.bigint());
const send = (m) => process.send({ pid: process.pid, ...m });

let acquire;
if (lib === 'elect') {
  const { createElection } = require('..');
  const election = createElection({ dir });
  acquire = async () => {
    const ticket = await election.obtain('bench');
    return () => ticket.release();
  };
} else {
  const lockfile = require('proper-lockfile');
  const file = path.join(dir, 'bench');
  const options = {
    realpath: false,
    // Its shortest staleness (2 s; the default is 10 s) and a steady poll.
    stale: 2000,
    retries: { retries: 1e6, factor: 1, minTimeout: Number(pollMs), maxTimeout: Number(pollMs) },
  };
  acquire = () => lockfile.lock(file, options);
}

let release = null;
process.on('message', async (m) => {
  if (m === 'hold' || m === 'wait') {
    const got = acquire();
    if (m === 'wait') send({ ev: 'waiting' });
    release = await got;
    send({ ev: m === 'hold' ? 'held' : 'got', at: now() });
  } else if (m === 'release') {
    const at = now();
    await release();
    release = null;
    send({ ev: 'released', at });
  }
});
send({ ev: 'ready' });
