'use strict';
// The API within one process: try, wait, timeout, abort, release, status,
// errors, campaigns, and that a wait leaves the event loop and libuv's
// threadpool free.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { createElection, Election, Campaign, status, MAX_TICKETS } = require('..');
const { runDir, deadline, runScript, until, pkg } = require('./helpers');

test('tryObtain takes a free ticket and returns null when none is free; release is idempotent', (t) => {
  const e = createElection({ dir: runDir(t) });
  const a = e.tryObtain('job');
  assert.ok(a, 'the first try gets the ticket');
  assert.equal(a.slot, 0);
  assert.equal(a.name, 'job');
  assert.ok(Number.isSafeInteger(a.token) && a.token > 0, `token ${a.token}`);
  assert.equal(a.tokenBigInt, BigInt(a.token));
  assert.ok(a.isHeld());
  assert.equal(a.record().pid, process.pid);
  assert.equal(e.tryObtain('job'), null, 'one ticket, already out');
  a.release();
  a.release();
  assert.equal(a.isHeld(), false);
  assert.equal(a.record(), null);
  const b = e.tryObtain('job');
  assert.ok(b, 'free again after release');
  assert.ok(b.token > a.token, 'tokens increase');
  b.release();
});

test('N tickets: at most N at once, each on its own slot', (t) => {
  const e = createElection({ dir: runDir(t), tickets: 3 });
  const held = [e.tryObtain('pool'), e.tryObtain('pool'), e.tryObtain('pool')];
  assert.deepEqual(held.map((x) => x.slot).sort(), [0, 1, 2]);
  assert.equal(e.tryObtain('pool'), null);
  const st = e.status('pool');
  assert.equal(st.tickets, 3);
  assert.equal(st.slots.filter((s) => s.held).length, 3);
  held.forEach((x) => x.release());
  assert.equal(e.status('pool').slots.filter((s) => s.held).length, 0);
});

test('obtain() waits without blocking the event loop: a timer keeps ticking, and the release it makes ends the wait', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const held = e.tryObtain('loop');
  let ticks = 0;
  const timer = setInterval(() => {
    ticks += 1;
    if (ticks === 5) held.release();
  }, 5);
  t.after(() => clearInterval(timer));
  const ticket = await deadline(e.obtain('loop'), 10000, 'the ticket');
  assert.ok(ticks >= 5, `the timer ticked ${ticks} times while the wait was pending`);
  assert.equal(ticket.slot, 0);
  ticket.release();
});

test('pending waits do not occupy libuv threadpool: with 8 waits pending, fs and crypto still run', async (t) => {
  const dir = runDir(t);
  const e = createElection({ dir });
  const held = e.tryObtain('pool');
  const ac = new AbortController();
  const waits = Array.from({ length: 8 }, () => e.obtain('pool', { signal: ac.signal }).catch((err) => err));
  await until(() => e.status('pool').waiters.length === 8, 10000, 'eight waits in line');
  // The threadpool has 4 threads (UV_THREADPOOL_SIZE unset); were the waits
  // on it, these would never run.
  await deadline(fs.promises.readFile(__filename), 10000, 'fs.readFile');
  await deadline(
    new Promise((resolve, reject) => crypto.pbkdf2('x', 'y', 1, 8, 'sha256', (err, k) => (err ? reject(err) : resolve(k)))),
    10000,
    'crypto.pbkdf2',
  );
  assert.equal(e.status('pool').waiters.length, 8, 'all eight still wait');
  ac.abort();
  const outcomes = await deadline(Promise.all(waits), 10000, 'the aborted waits');
  for (const o of outcomes) assert.equal(o.name, 'AbortError');
  held.release();
});

test('timeout: null when no ticket came in time; 0 tries once; a ticket when one comes in time', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const held = e.tryObtain('slow');
  const started = process.hrtime.bigint();
  assert.equal(await e.obtain('slow', { timeout: 100 }), null);
  const waited = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(waited >= 95, `gave up after ${waited} ms, before the timeout`);
  assert.equal(await e.obtain('slow', { timeout: 0 }), null);
  const p = e.obtain('slow', { timeout: 60000 });
  held.release();
  const got = await deadline(p, 10000, 'the ticket');
  assert.ok(got);
  got.release();
  const free = await e.obtain('slow', { timeout: 0 });
  assert.ok(free, 'timeout 0 takes a free ticket');
  free.release();
  // Too long to be a duration: no timeout at all, not a crash.
  const huge = await deadline(e.obtain('slow', { timeout: 1e300 }), 10000, 'a ticket under a huge timeout');
  assert.ok(huge);
  huge.release();
});

test('an AbortSignal ends a wait at once, with the signal\'s reason, and the place in line is given up', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const held = e.tryObtain('abort');
  const ac = new AbortController();
  const p = e.obtain('abort', { signal: ac.signal });
  await until(() => (e.status('abort').waiters ?? []).length === 1, 10000, 'the wait to stand in line');
  ac.abort();
  await assert.rejects(deadline(p, 10000, 'the abort'), { name: 'AbortError' });
  await until(() => e.status('abort').waiters.length === 0, 10000, 'the line to empty');
  await assert.rejects(e.obtain('abort', { signal: AbortSignal.abort() }), { name: 'AbortError' });
  held.release();
});

test('bad input gives an Error that names the problem, with a code', async (t) => {
  const dir = runDir(t);
  const e = createElection({ dir });
  const cases = [
    [() => e.tryObtain('bad name'), 'ELECT_INVALID_NAME', /invalid resource name "bad name".*' ' \(U\+0020\)/],
    [() => e.tryObtain('../etc'), 'ELECT_INVALID_NAME', /invalid resource name "\.\.\/etc"/],
    [() => e.tryObtain(''), 'ELECT_INVALID_NAME', /invalid resource name ""/],
    [() => e.tryObtain(42), 'ELECT_INVALID_NAME', /invalid resource name 42: a resource name must be a string/],
    [() => e.tryObtain('x'.repeat(129)), 'ELECT_INVALID_NAME', /invalid resource name/],
    [() => e.tryObtain('ok', { tickets: 0 }), 'ELECT_INVALID_TICKETS', /invalid number of tickets 0: it must be from 1 to 4096/],
    [() => e.tryObtain('ok', { tickets: MAX_TICKETS + 1 }), 'ELECT_INVALID_TICKETS', /invalid number of tickets 4097/],
    [() => e.tryObtain('ok', { tickets: 2 ** 40 }), 'ELECT_INVALID_TICKETS', /invalid number of tickets 1099511627776/],
    [() => e.tryObtain('ok', { tickets: -1 }), 'ELECT_INVALID_TICKETS', /invalid number of tickets -1/],
    [() => e.tryObtain('ok', { tickets: 1.5 }), 'ELECT_INVALID_TICKETS', /invalid number of tickets 1\.5/],
    [() => e.tryObtain('ok', { tickets: '2' }), 'ELECT_INVALID_TICKETS', /invalid number of tickets "2"/],
    [() => e.tryObtain('ok', { ticket: 2 }), 'ELECT_INVALID_OPTION', /unknown option "ticket"/],
    [() => e.tryObtain('ok', { dir: 7 }), 'ELECT_INVALID_OPTION', /option dir must be a string/],
    [() => new Election({ tickets: 0 }).tryObtain('ok'), 'ELECT_INVALID_TICKETS', /invalid number of tickets 0/],
    [() => e.obtain('bad name', () => {}), 'ELECT_INVALID_NAME', /invalid resource name "bad name"/],
    [() => e.obtain('ok', () => {}, { tickets: 0 }), 'ELECT_INVALID_TICKETS', /invalid number of tickets 0/],
    [() => e.obtain('ok', () => {}, 'cleanup', {}), 'ELECT_INVALID_OPTION', /cleanup must be a function/],
    [() => e.obtain('ok', 'x', () => {}), 'ELECT_INVALID_OPTION', /onObtain must be a function/],
    [() => e.status('bad/name'), 'ELECT_INVALID_NAME', /invalid resource name "bad\/name"/],
    [() => status({ name: 'a b', dir }), 'ELECT_INVALID_NAME', /invalid resource name "a b"/],
  ];
  for (const [call, code, message] of cases) {
    assert.throws(call, (err) => {
      assert.ok(err instanceof Error, `${err} is an Error`);
      assert.equal(err.code, code, `${err.message}`);
      assert.match(err.message, message);
      return true;
    });
  }
  // The Promise form rejects instead of throwing.
  await assert.rejects(e.obtain('bad name'), { code: 'ELECT_INVALID_NAME' });
  await assert.rejects(e.obtain('ok', { tickets: 0 }), { code: 'ELECT_INVALID_TICKETS' });
  await assert.rejects(e.obtain('ok', { timeout: -1 }), { code: 'ELECT_INVALID_TIMEOUT', message: /invalid timeout -1/ });
  await assert.rejects(e.obtain('ok', { timeout: NaN }), { code: 'ELECT_INVALID_TIMEOUT' });
  await assert.rejects(e.obtain('ok', { signal: 'no' }), { code: 'ELECT_INVALID_OPTION' });
  // Nothing was created for any of them.
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('a run directory others may write is refused with the library\'s message', (t) => {
  const dir = runDir(t);
  fs.chmodSync(dir, 0o777);
  const e = createElection({ dir });
  assert.throws(() => e.tryObtain('x'), (err) => {
    assert.equal(err.code, 'ELECT_UNSAFE');
    assert.ok(err.message.includes(dir), err.message);
    return true;
  });
});

test('participants that disagree on N: the later one gets ELECT_TICKET_MISMATCH, from a wait too', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const held = e.tryObtain('db', { tickets: 2 });
  assert.throws(() => e.tryObtain('db', { tickets: 3 }), { code: 'ELECT_TICKET_MISMATCH', message: /in use with 2 ticket\(s\), but 3 were asked for/ });
  await assert.rejects(e.obtain('db', { tickets: 3 }), { code: 'ELECT_TICKET_MISMATCH' });
  held.release();
});

test('status: the contract\'s JSON for one resource and for the run directory', (t) => {
  const dir = runDir(t);
  const e = createElection({ dir, label: 'status test' });
  assert.deepEqual(e.status('never'), { name: 'never', tickets: 1, slots: [] });
  const held = e.tryObtain('seen');
  const one = e.status('seen');
  assert.equal(one.slots[0].held, true);
  assert.equal(one.slots[0].pid, process.pid);
  assert.equal(one.slots[0].label, 'status test');
  assert.equal(one.slots[0].token, held.token);
  assert.match(one.slots[0].since, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const all = status({ dir });
  assert.equal(all.dir, dir);
  assert.deepEqual(all.resources.map((r) => r.name), ['seen']);
  assert.deepEqual(e.status(), all);
  held.release();
  assert.equal(e.status('seen').slots[0].held, false);
});

test('a ticket nobody refers to is released when the garbage collector collects it', async () => {
  const script = `
    const { createElection } = require(${JSON.stringify(pkg)});
    const dir = require('fs').mkdtempSync(require('os').tmpdir() + '/elect-node-gc-');
    const e = createElection({ dir });
    (function () { e.tryObtain('gc'); })();   // dropped at once
    (async () => {
      // napi runs finalizers after the collection, in a later turn.
      let again = null;
      for (let i = 0; i < 50 && again === null; i++) {
        global.gc();
        await new Promise((resolve) => setImmediate(resolve));
        again = e.tryObtain('gc');
      }
      console.log(again ? 'released by gc' : 'still held');
      require('fs').rmSync(dir, { recursive: true });
    })();
  `;
  const r = await deadline(runScript(script, { args: ['--expose-gc'] }).done, 20000, 'the gc script');
  assert.equal(r.stderr, '');
  assert.equal(r.stdout.trim(), 'released by gc');
});

test('campaign: onObtain gets release; cleanup (async) runs before the ticket goes to the next', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const events = [];
  let release;
  let finishCleanup;
  let wonToken;
  const c = e.obtain(
    'svc',
    (rel, ticket) => {
      release = rel;
      wonToken = ticket.token;
      events.push(`won ${ticket.slot}`);
    },
    (ending) => {
      events.push(`cleanup ${ending}`);
      return new Promise((resolve) => (finishCleanup = resolve));
    },
  );
  assert.ok(c instanceof Campaign);
  await until(() => release, 10000, 'the win');
  assert.ok(c.owner);
  assert.equal(c.ticket.slot, 0);
  const next = e.obtain('svc');
  const released = release();
  await until(() => finishCleanup, 10000, 'the cleanup');
  // The cleanup is still running: the slot is still held, by the first
  // owner's ticket (released early, it would be free or the next one's,
  // with a larger token).
  const slot = e.status('svc').slots[0];
  assert.equal(slot.held, true, 'held while the cleanup runs');
  assert.equal(slot.token, wonToken, 'still the first owner\'s ticket');
  finishCleanup();
  await deadline(released, 10000, 'release() to settle');
  const ticket = await deadline(next, 10000, 'the next owner');
  await deadline(c.ended, 10000, 'the campaign to end');
  assert.deepEqual(events, ['won 0', 'cleanup released']);
  assert.equal(c.owner, false);
  ticket.release();
});

test('campaign: resign ends a wait (no cleanup) or ownership (cleanup with "resigned")', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const held = e.tryObtain('r');
  const calls = [];
  const waiting = e.obtain('r', () => calls.push('won'), () => calls.push('cleanup'));
  await until(() => e.status('r').waiters.length === 1, 10000, 'the campaign to stand in line');
  await deadline(waiting.resign(), 10000, 'resign of a waiting campaign');
  assert.deepEqual(calls, []);
  assert.equal(e.status('r').waiters.length, 0);
  held.release();

  let won = false;
  const owning = e.obtain('r', () => (won = true), async (ending) => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    calls.push(`cleanup ${ending}`);
  });
  await until(() => won, 10000, 'the win');
  await deadline(owning.resign(), 10000, 'resign of an owner');
  assert.deepEqual(calls, ['cleanup resigned'], 'resign settles after the async cleanup');
  const t2 = e.tryObtain('r');
  assert.ok(t2, 'the ticket is free after resign');
  t2.release();
  await owning.resign(); // a second resign is harmless
});

test('campaign: requeue competes again after release; a removed run directory ends ownership as "lost"', async (t) => {
  const dir = path.join(runDir(t), 'run');
  const e = createElection({ dir });
  const endings = [];
  const wins = [];
  const c = e.obtain(
    'again',
    (release, ticket) => {
      wins.push(ticket.token);
      if (wins.length === 1) release();
    },
    (ending) => endings.push(ending),
    { requeue: true, checkEvery: 10 },
  );
  await until(() => wins.length === 2, 10000, 'the second win');
  fs.rmSync(dir, { recursive: true });
  await until(() => endings.length === 2, 10000, 'the loss');
  assert.deepEqual(endings, ['released', 'lost']);
  await until(() => wins.length === 3, 10000, 'a win after the loss');
  await deadline(c.resign(), 10000, 'resign');
  assert.deepEqual(endings, ['released', 'lost', 'resigned']);
});

test('campaign: a release() kept from an earlier win does not end a later ownership; a ticket released directly ends it as "released"', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const endings = [];
  const releases = [];
  const tickets = [];
  const c = e.obtain(
    'stale',
    (release, ticket) => {
      releases.push(release);
      tickets.push(ticket);
    },
    (ending) => endings.push(ending),
    { requeue: true, checkEvery: 10 },
  );
  await until(() => releases.length === 1, 10000, 'the first win');
  await deadline(releases[0](), 10000, 'the first release');
  await until(() => releases.length === 2, 10000, 'the second win');
  releases[0](); // stale: the first ownership is over
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(endings, ['released']);
  assert.equal(c.owner, true, 'the second ownership goes on');
  // The owner releases the native ticket itself: free at once, and the
  // check tells it from a loss.
  tickets[1].release();
  await until(() => endings.length === 2, 10000, 'the second ending');
  assert.equal(endings[1], 'released');
  await deadline(c.resign(), 10000, 'resign');
});

test('campaign: a checkEvery longer than setInterval takes is not turned into 1 ms', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const warnings = [];
  const onWarning = (w) => warnings.push(w.name);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  let won = false;
  const c = e.obtain('long', () => (won = true), null, { checkEvery: 1e10 });
  await until(() => won, 10000, 'the win');
  await new Promise((resolve) => setImmediate(resolve));
  await deadline(c.resign(), 10000, 'resign');
  assert.ok(!warnings.includes('TimeoutOverflowWarning'), `warnings: ${warnings}`);
});

test('campaign: an error thrown by onObtain ends ownership, runs the cleanup and rejects `ended`', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const endings = [];
  const c = e.obtain('boom', () => {
    throw new Error('owner failed');
  }, (ending) => endings.push(ending));
  await assert.rejects(deadline(c.ended, 10000, 'the end'), { message: 'owner failed' });
  assert.deepEqual(endings, ['released']);
  const free = e.tryObtain('boom');
  assert.ok(free);
  free.release();
});

test('campaign: a library error while competing rejects `ended` with it', async (t) => {
  const e = createElection({ dir: runDir(t) });
  const held = e.tryObtain('n', { tickets: 2 });
  const c = e.obtain('n', () => assert.fail('cannot win'), null, { tickets: 1 });
  await assert.rejects(deadline(c.ended, 10000, 'the end'), { code: 'ELECT_TICKET_MISMATCH' });
  held.release();
});
