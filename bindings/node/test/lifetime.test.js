'use strict';
// What keeps a process alive: nothing, once nothing waits and no campaign
// runs; a pending wait or a campaign, until it ends.
const test = require('node:test');
const assert = require('node:assert/strict');
const { createElection } = require('..');
const { runDir, deadline, runScript, until, pkg } = require('./helpers');

const prelude = (dir) => `
  const { createElection } = require(${JSON.stringify(pkg)});
  const e = createElection({ dir: ${JSON.stringify(dir)} });
`;

test('a process that used elect but holds or waits for nothing exits by itself', async (t) => {
  const dir = runDir(t);
  const script = `${prelude(dir)}
    const t = e.tryObtain('x');
    e.status('x');
    t.release();
    (async () => {
      const held = e.tryObtain('y');
      console.log('timed out:', (await e.obtain('y', { timeout: 20 })) === null);
      const ac = new AbortController();
      const p = e.obtain('y', { signal: ac.signal }).catch((err) => console.log('aborted:', err.name));
      ac.abort();
      await p;
      const c = e.obtain('z', (release) => release(), () => console.log('cleanup'));
      await c.ended;
      globalThis.kept = e.tryObtain('kept');   // a held ticket does not keep it alive
      console.log('done');
    })();
  `;
  const r = await deadline(runScript(script).done, 20000, 'the script to exit by itself');
  assert.equal(r.stderr, '');
  assert.deepEqual(r.stdout.trim().split('\n'), ['timed out: true', 'aborted: AbortError', 'cleanup', 'done']);
  assert.equal(r.code, 0);
});

test('a pending wait keeps the process alive until it ends', async (t) => {
  const dir = runDir(t);
  const e = createElection({ dir });
  const held = e.tryObtain('w');
  const script = `${prelude(dir)}
    e.obtain('w').then((t) => console.log('got slot', t.slot));
    console.log('waiting');
  `;
  const run = runScript(script);
  // Were the wait not keeping it alive, the script would end here, before
  // the release below, and never print "got".
  await until(() => e.status('w').waiters?.includes(run.child.pid), 10000, 'the script in line');
  held.release();
  const r = await deadline(run.done, 20000, 'the script to exit');
  assert.equal(r.stderr, '');
  assert.deepEqual(r.stdout.trim().split('\n'), ['waiting', 'got slot 0']);
  assert.equal(r.code, 0);
});

test('a campaign keeps the process alive while it waits and while it owns, and lets it exit once it ends', async (t) => {
  const dir = runDir(t);
  const e = createElection({ dir });
  const held = e.tryObtain('c');
  const script = `${prelude(dir)}
    e.obtain('c', (release) => {
      console.log('won');
      // An unref'd timer keeps nothing alive: only the campaign does.
      setTimeout(release, 100).unref();
    }, async (ending) => console.log('cleanup', ending));
  `;
  const run = runScript(script);
  await until(() => e.status('c').waiters?.includes(run.child.pid), 10000, 'the campaign in line');
  held.release();
  const r = await deadline(run.done, 20000, 'the script to exit');
  assert.equal(r.stderr, '');
  assert.deepEqual(r.stdout.trim().split('\n'), ['won', 'cleanup released']);
  assert.equal(r.code, 0);
});
