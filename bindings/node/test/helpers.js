'use strict';
// Shared by the tests: a private run directory, forked workers that report
// over IPC, and waits for events with generous deadlines (never sleeps as
// synchronisation).
const { fork, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** A fresh run directory (mode 0700, ours), removed when the test ends. */
function runDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'elect-node-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Rejects after `ms` with `what`; the timer does not keep the process alive. */
function deadline(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A worker (test/fixtures/worker.js) forked with `config`; its messages are
 * kept in order, and `next(pred)` waits for the first unread one that
 * matches. Killed with SIGKILL when the test ends, if still running.
 */
function worker(t, config) {
  const child = fork(path.join(__dirname, 'fixtures', 'worker.js'), [JSON.stringify(config)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const w = { child, pid: child.pid, messages: [], waiters: [], exited: null };
  w.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.on('message', (m) => {
    w.messages.push(m);
    for (const waiter of [...w.waiters]) waiter();
  });
  w.next = (pred, ms = 10000, what = 'a message') =>
    deadline(
      new Promise((resolve) => {
        const look = () => {
          const i = w.messages.findIndex(pred);
          if (i >= 0) {
            const [m] = w.messages.splice(i, 1);
            w.waiters = w.waiters.filter((x) => x !== look);
            resolve(m);
          }
        };
        w.waiters.push(look);
        look();
      }),
      ms,
      `${what} from worker ${child.pid}`,
    );
  w.send = (m) => child.send(m);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return w;
}

/** Runs `node -e script` (no IPC) and returns { code, signal, stdout, stderr } once it exits. */
function runScript(script, { env = {}, args = [], onLine } = {}) {
  const child = spawn(process.execPath, [...args, '-e', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout.on('data', (d) => {
    stdout += d;
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (onLine) onLine(line, child);
    }
  });
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

/** Polls `check` (cheap, synchronous) every few ms until it is truthy. */
function until(check, ms, what) {
  return deadline(
    new Promise((resolve) => {
      const look = () => {
        const v = check();
        if (v) resolve(v);
        else setTimeout(look, 2);
      };
      look();
    }),
    ms,
    what,
  );
}

const pkg = path.resolve(__dirname, '..');

module.exports = { runDir, deadline, worker, runScript, until, pkg };
