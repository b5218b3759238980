'use strict';
// A Node participant of the cross-language test (test_cross_language.py).
// It uses the elect-node package of this repository, required by path.
//
//   node participant.js hold DIR NAME TICKETS LABEL
//       waits for a ticket, prints "HELD <slot> <token>", releases on a line
//       on stdin (or at its end), prints "RELEASED" and exits 0.
//   node participant.js try DIR NAME TICKETS LABEL
//       tryObtain once; prints one JSON line: {"ok": true, "slot", "token"}
//       or {"ok": false, "code", "message"} (an error), or {"ok": false,
//       "busy": true} (null: no free ticket). Exits 0.
//   node participant.js loop DIR NAME TICKETS LABEL ROUNDS LIMIT
//       ROUNDS times: obtain; create DIR/markers/node-<pid>-<round> with
//       O_EXCL; if more than LIMIT markers exist, append a line to
//       DIR/violations; hold about 2 ms; remove the marker; append the
//       token to DIR/tokens/node-<pid>; release. Prints "DONE" and exits 0.
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { createElection } = require(process.env.ELECT_NODE_PACKAGE || path.join(__dirname, '..', 'node'));

const [mode, dir, name, ticketsArg, label, roundsArg, limitArg] = process.argv.slice(2);
const tickets = Number(ticketsArg);
const scope = createElection({ tickets, dir, label });

function say(line) {
  fs.writeSync(1, line + '\n'); // synchronous: the test reads it at once
}

async function hold() {
  const ticket = await scope.obtain(name);
  say(`HELD ${ticket.slot} ${ticket.token}`);
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => {
    rl.once('line', resolve);
    rl.once('close', resolve);
  });
  ticket.release();
  say('RELEASED');
  rl.close();
  process.stdin.destroy();
}

function tryOnce() {
  try {
    const ticket = scope.tryObtain(name);
    if (ticket === null) {
      say(JSON.stringify({ ok: false, busy: true }));
    } else {
      say(JSON.stringify({ ok: true, slot: ticket.slot, token: ticket.token }));
      ticket.release();
    }
  } catch (e) {
    say(JSON.stringify({ ok: false, code: e.code ?? null, message: String(e.message) }));
  }
}

async function loop() {
  const rounds = Number(roundsArg);
  const limit = Number(limitArg);
  const markers = path.join(dir, 'markers');
  const me = `node-${process.pid}`;
  const tokens = path.join(dir, 'tokens', me);
  for (let round = 0; round < rounds; round++) {
    const ticket = await scope.obtain(name);
    const marker = path.join(markers, `${me}-${round}`);
    fs.closeSync(fs.openSync(marker, 'wx'));
    const present = fs.readdirSync(markers);
    if (present.length > limit) {
      fs.appendFileSync(path.join(dir, 'violations'), `${me} round ${round}: ${present.length} holders: ${present.join(' ')}\n`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
    fs.unlinkSync(marker);
    fs.appendFileSync(tokens, `${ticket.token}\n`);
    ticket.release();
  }
  say('DONE');
}

const modes = { hold, try: tryOnce, loop };
if (!modes[mode]) {
  console.error(`participant.js: unknown mode ${mode}; give hold, try or loop`);
  process.exit(2);
}
Promise.resolve(modes[mode]()).catch((e) => {
  console.error(`participant.js ${mode}: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
