'use strict';
// Real processes (child_process.fork) competing as the framework's cluster
// workers do: take-over after SIGKILL, never more than N owners, resign.
const test = require('node:test');
const assert = require('node:assert/strict');
const { createElection } = require('..');
const { runDir, worker, until } = require('./helpers');

const now = () => Number(process.hrtime.bigint());

test('SIGKILL of the owner: the waiting worker takes over at once', async (t) => {
  const dir = runDir(t);
  const e = createElection({ dir });
  const workers = [worker(t, { dir, resource: 'echo' }), worker(t, { dir, resource: 'echo' })];
  await Promise.all(workers.map((w) => w.next((m) => m.ev === 'ready')));
  const ownerPid = await until(() => e.status('echo').slots[0]?.pid, 10000, 'an owner');
  const first = workers.find((w) => w.pid === ownerPid);
  await first.next((m) => m.ev === 'won');
  const other = workers.find((w) => w !== first);
  await until(() => e.status('echo').waiters?.includes(other.pid), 10000, 'the other worker in line');
  assert.equal(e.status('echo').slots[0].pid, first.pid);
  const killedAt = now();
  first.child.kill('SIGKILL');
  const won = await other.next((m) => m.ev === 'won', 10000, 'the take-over');
  const ms = (won.at - killedAt) / 1e6;
  t.diagnostic(`take-over ${ms.toFixed(2)} ms after SIGKILL`);
  assert.ok(ms >= 0 && ms < 2000, `took over ${ms} ms after the kill`);
  assert.deepEqual(await first.exited, { code: null, signal: 'SIGKILL' });
  const slot = e.status('echo').slots[0];
  assert.equal(slot.held, true);
  assert.equal(slot.pid, other.pid);
});

test('4 workers, 2 tickets: never more than 2 owners, through releases and a SIGKILL', async (t) => {
  const dir = runDir(t);
  const workers = Array.from({ length: 4 }, () =>
    // Each cleanup waits for the parent's ack, so that the parent has
    // counted the owner out before its ticket is released.
    worker(t, { dir, resource: 'echo', tickets: 2, requeue: true, ackCleanup: true }),
  );
  const byPid = new Map(workers.map((w) => [w.pid, w]));
  const owners = new Set();
  let most = 0;
  let wins = 0;
  const violations = [];
  const onMessage = (m) => {
    if (m.ev === 'won') {
      owners.add(m.pid);
      wins += 1;
      most = Math.max(most, owners.size);
      if (owners.size > 2) violations.push(`${owners.size} owners`);
    } else if (m.ev === 'cleanup') {
      owners.delete(m.pid);
      byPid.get(m.pid).send('ack-cleanup');
    } else if (m.ev === 'error') {
      violations.push(`worker ${m.pid}: ${m.message}`);
    }
  };
  for (const w of workers) w.child.on('message', onMessage);
  await until(() => owners.size === 2, 10000, 'two owners');

  // Twenty hand-offs: an owner releases, and (requeue) stands in line again.
  for (let round = 0; round < 20; round++) {
    const target = wins + 1;
    const owner = byPid.get([...owners][round % owners.size]);
    owner.send('release');
    await until(() => wins >= target && owners.size === 2, 10000, `round ${round}: two owners again`);
  }

  // One owner SIGKILLed: it can no longer own anything.
  const victim = byPid.get([...owners][0]);
  const target = wins + 1;
  owners.delete(victim.pid);
  victim.child.kill('SIGKILL');
  await until(() => wins >= target && owners.size === 2, 10000, 'a take-over after the kill');
  assert.ok(!owners.has(victim.pid));

  assert.deepEqual(violations, []);
  assert.equal(most, 2, 'two owners at once, never more');
  assert.ok(wins >= 23, `${wins} wins`);
});

test('resign: the cleanup runs, then the ticket goes to the waiting worker', async (t) => {
  const dir = runDir(t);
  const e = createElection({ dir });
  const a = worker(t, { dir, resource: 'svc' });
  await a.next((m) => m.ev === 'won');
  const b = worker(t, { dir, resource: 'svc' });
  await until(() => e.status('svc').waiters?.includes(b.pid), 10000, 'b in line');
  a.send('resign');
  const cleanup = await a.next((m) => m.ev === 'cleanup');
  assert.equal(cleanup.ending, 'resigned');
  const cleaned = await a.next((m) => m.ev === 'cleaned');
  await a.next((m) => m.ev === 'resigned');
  await a.next((m) => m.ev === 'ended');
  const won = await b.next((m) => m.ev === 'won');
  assert.ok(won.at > cleaned.at, 'b won only after a\'s cleanup had finished');
  assert.equal(e.status('svc').slots[0].pid, b.pid);
  // A worker that resigned and has nothing else to do exits by itself
  // once its IPC channel closes.
  a.child.disconnect();
  assert.deepEqual(await a.exited, { code: 0, signal: null });
});
