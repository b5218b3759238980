'use strict';
// elect-node: the JavaScript face of elect. Election logic lives in the Rust
// library (through elect.node); this file checks arguments, turns the
// native wait's callback into Promises, and sequences a campaign: win,
// run the owner's code, wait for the end of ownership, run the cleanup,
// release.

const native = loadNative();

function loadNative() {
  try {
    return require('./elect.node');
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND') {
      const err = new Error(
        `elect-node: the native module ${require('node:path').join(__dirname, 'elect.node')} is not built; ` +
          'run `npm run build` in the package (it needs Rust: cargo)',
      );
      err.code = 'ELECT_NOT_BUILT';
      throw err;
    }
    throw e;
  }
}

const { NativeElection, NativeTicket, MAX_TICKETS } = native;

/** The default period of an owner's check that its ticket was not lost. */
const CHECK_EVERY = 250;
/** The longest delay setInterval takes (a longer one becomes 1 ms). */
const MAX_INTERVAL = 2 ** 31 - 1;

// A ticket is the native object itself; `using ticket = ...` releases it.
if (typeof Symbol.dispose === 'symbol') {
  NativeTicket.prototype[Symbol.dispose] = function dispose() {
    this.release();
  };
}

function usageError(Kind, code, message) {
  const err = new Kind(message);
  err.code = code;
  return err;
}

function describe(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  return Object.prototype.toString.call(value);
}

function checkResource(resource) {
  if (typeof resource !== 'string') {
    throw usageError(
      TypeError,
      'ELECT_INVALID_NAME',
      `invalid resource name ${describe(resource)}: a resource name must be a string of 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  return resource;
}

const ELECTION_KEYS = ['tickets', 'dir', 'label'];
const OBTAIN_KEYS = [...ELECTION_KEYS, 'timeout', 'signal'];
const CAMPAIGN_KEYS = [...ELECTION_KEYS, 'timeout', 'requeue', 'checkEvery'];

/** Checks an options object against the keys `allowed` and returns a copy. */
function checkOptions(options, allowed, where) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw usageError(TypeError, 'ELECT_INVALID_OPTION', `${where}: options must be an object, got ${describe(options)}`);
  }
  const out = {};
  for (const [key, value] of Object.entries(options)) {
    if (!allowed.includes(key)) {
      throw usageError(
        TypeError,
        'ELECT_INVALID_OPTION',
        `${where}: unknown option ${JSON.stringify(key)}; the options are ${allowed.join(', ')}`,
      );
    }
    if (value !== undefined) out[key] = value;
  }
  if ('tickets' in out) {
    const t = out.tickets;
    // Integers from 0 up go to the library, which says what is wrong in its
    // own words; what is not a whole number cannot reach it.
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) {
      throw usageError(
        RangeError,
        'ELECT_INVALID_TICKETS',
        `invalid number of tickets ${describe(t)}: it must be a whole number from 1 to ${MAX_TICKETS}`,
      );
    }
  }
  for (const key of ['dir', 'label']) {
    if (key in out && typeof out[key] !== 'string') {
      throw usageError(TypeError, 'ELECT_INVALID_OPTION', `${where}: option ${key} must be a string, got ${describe(out[key])}`);
    }
  }
  if ('timeout' in out && out.timeout !== null && out.timeout !== Infinity) {
    const t = out.timeout;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
      throw usageError(
        RangeError,
        'ELECT_INVALID_TIMEOUT',
        `${where}: invalid timeout ${describe(t)}: give milliseconds (a number >= 0), or null or Infinity to wait as long as it takes`,
      );
    }
  }
  if ('checkEvery' in out) {
    const c = out.checkEvery;
    if (typeof c !== 'number' || !Number.isFinite(c) || c < 1) {
      throw usageError(RangeError, 'ELECT_INVALID_OPTION', `${where}: checkEvery must be milliseconds >= 1, got ${describe(c)}`);
    }
  }
  if ('requeue' in out && typeof out.requeue !== 'boolean') {
    throw usageError(TypeError, 'ELECT_INVALID_OPTION', `${where}: requeue must be true or false, got ${describe(out.requeue)}`);
  }
  if ('signal' in out && !(out.signal instanceof AbortSignal)) {
    throw usageError(TypeError, 'ELECT_INVALID_OPTION', `${where}: signal must be an AbortSignal, got ${describe(out.signal)}`);
  }
  return out;
}

/** Milliseconds to wait, or null for as long as it takes. */
function timeoutOf(options) {
  const t = options.timeout;
  return t === undefined || t === null || t === Infinity ? null : t;
}

function abortReason(signal) {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/**
 * A campaign: competes for a resource in the background, calls `onObtain`
 * on winning, `cleanup` when ownership ends (released, lost, resigned), and
 * releases the ticket only after the cleanup has finished.
 */
class Campaign {
  #election;
  #onObtain;
  #cleanup;
  #options;
  #wait = null;
  #endOwnership = null;
  #resigning = false;
  #ticket = null;
  #ended;

  constructor(election, onObtain, cleanup, options) {
    this.#election = election;
    this.#onObtain = onObtain;
    this.#cleanup = cleanup;
    this.#options = options;
    this.#ended = this.#run();
  }

  /** Settles when the campaign has ended: resolves, or rejects with the error that ended it. */
  get ended() {
    return this.#ended;
  }

  /** The ticket while this campaign owns the resource, else null. */
  get ticket() {
    return this.#ticket;
  }

  /** Whether this campaign owns the resource now. */
  get owner() {
    return this.#ticket !== null;
  }

  /**
   * Stops competing: ends a wait, or ends ownership and runs the cleanup
   * with 'resigned'. The Promise settles once the campaign has ended and the
   * cleanup has run (rejecting with the error that ended the campaign, if
   * one did).
   */
  resign() {
    if (!this.#resigning) {
      this.#resigning = true;
      if (this.#wait) this.#wait.cancel();
      if (this.#endOwnership) this.#endOwnership('resigned');
    }
    return this.#ended;
  }

  async #run() {
    const requeue = this.#options.requeue === true;
    while (!this.#resigning) {
      const ticket = await this.#obtainOnce();
      if (ticket === null) return; // resigned while waiting, or timed out
      const ending = await this.#own(ticket);
      if (ending === 'resigned' || !requeue) return;
    }
  }

  #obtainOnce() {
    return new Promise((resolve, reject) => {
      this.#wait = this.#election.wait(timeoutOf(this.#options), (err, ticket) => {
        this.#wait = null;
        if (err) {
          if (err.code === 'ELECT_CANCELLED') resolve(null);
          else reject(err);
        } else if (ticket !== null && this.#resigning) {
          // The ticket came as the cancel did: not ours any more.
          ticket.release();
          resolve(null);
        } else {
          resolve(ticket);
        }
      });
    });
  }

  async #own(ticket) {
    // Ends this ownership, and no later one: a release() kept from an
    // earlier win, or a late rejection of its onObtain, finds its own
    // Promise settled already (a Promise settles once).
    let end;
    const ending = new Promise((resolve) => {
      end = resolve;
    });
    this.#endOwnership = end;
    let releasedResolve;
    const released = new Promise((resolve) => {
      releasedResolve = resolve;
    });
    const release = () => {
      end('released');
      return released;
    };
    // The owner looks at its slot (one stat) so that a removed run
    // directory ends ownership; this timer also keeps the process alive
    // while the campaign owns. A ticket the owner released itself
    // (ticket.release()) has no record left: released, not lost. setInterval
    // takes at most 2^31-1 ms (longer becomes 1 ms).
    const check = setInterval(() => {
      if (!ticket.isHeld()) end(ticket.record() === null ? 'released' : 'lost');
    }, Math.min(this.#options.checkEvery ?? CHECK_EVERY, MAX_INTERVAL));
    this.#ticket = ticket;
    let error = null;
    try {
      const result = this.#onObtain(release, ticket);
      if (result && typeof result.then === 'function') {
        result.then(undefined, (e) => {
          error ??= e;
          end('released');
        });
      }
    } catch (e) {
      error = e;
      end('released');
    }
    const why = await ending;
    clearInterval(check);
    try {
      if (this.#cleanup) await this.#cleanup(why);
    } catch (e) {
      error ??= e;
    }
    // Released only now, so the next owner starts after this one's cleanup.
    this.#endOwnership = null;
    this.#ticket = null;
    ticket.release();
    releasedResolve();
    if (error !== null) throw error;
    return why;
  }
}

/**
 * Elections for resources named by `R` (a union of string literals in
 * TypeScript), with default options for every call.
 */
class Election {
  #defaults;

  constructor(defaults) {
    this.#defaults = checkOptions(defaults, ELECTION_KEYS, 'new Election()');
  }

  #native(resource, options) {
    const o = { ...this.#defaults, ...options };
    return new NativeElection(checkResource(resource), o.tickets ?? 1, o.dir ?? null, o.label ?? null);
  }

  /**
   * With a function, the framework's campaign:
   *   obtain(resource, onObtain(release, ticket), cleanup?(ending), options?) -> Campaign
   * Without one, a wait for a ticket:
   *   obtain(resource, options?) -> Promise<Ticket | null>
   */
  obtain(resource, onObtain, cleanup, options) {
    if (typeof onObtain === 'function') {
      if (cleanup !== undefined && cleanup !== null && typeof cleanup !== 'function') {
        if (options !== undefined) {
          throw usageError(TypeError, 'ELECT_INVALID_OPTION', `obtain(): cleanup must be a function, got ${describe(cleanup)}`);
        }
        options = cleanup;
        cleanup = undefined;
      }
      const o = checkOptions(options, CAMPAIGN_KEYS, 'obtain()');
      return new Campaign(this.#native(resource, o), onObtain, cleanup ?? null, o);
    }
    if (cleanup !== undefined || options !== undefined) {
      throw usageError(
        TypeError,
        'ELECT_INVALID_OPTION',
        `obtain(): onObtain must be a function, got ${describe(onObtain)}; call obtain(resource, onObtain, cleanup?, options?) or obtain(resource, options?)`,
      );
    }
    return this.#wait(resource, onObtain);
  }

  async #wait(resource, options) {
    const o = checkOptions(options, OBTAIN_KEYS, 'obtain()');
    const election = this.#native(resource, o);
    const signal = o.signal;
    if (signal?.aborted) throw abortReason(signal);
    if (o.timeout === 0) return election.tryObtain();
    return new Promise((resolve, reject) => {
      const onAbort = () => wait.cancel();
      const wait = election.wait(timeoutOf(o), (err, ticket) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) {
          ticket?.release();
          reject(abortReason(signal));
        } else if (err) {
          reject(err);
        } else {
          resolve(ticket);
        }
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A free ticket now, or null; never waits. */
  tryObtain(resource, options) {
    return this.#native(resource, checkOptions(options, ELECTION_KEYS, 'tryObtain()')).tryObtain();
  }

  /**
   * status(resource, options?): who holds the resource's slots, and who waits.
   * status(): every resource of the run directory (the defaults' dir).
   */
  status(resource, options) {
    if (resource === undefined) {
      return native.status(this.#defaults.dir ?? null, null);
    }
    return this.#native(resource, checkOptions(options, ELECTION_KEYS, 'status()')).status();
  }
}

function createElection(defaults) {
  return new Election(defaults);
}

/** The status of a run directory: every resource, or `name`'s. */
function status(options) {
  const o = checkOptions(options, ['dir', 'name'], 'status()');
  if ('name' in o) checkResource(o.name);
  if ('dir' in o && typeof o.dir !== 'string') {
    throw usageError(TypeError, 'ELECT_INVALID_OPTION', `status(): option dir must be a string, got ${describe(o.dir)}`);
  }
  return native.status(o.dir ?? null, o.name ?? null);
}

/** The default elections, as the framework's `scope.election`. */
const election = new Election();

module.exports = {
  election,
  Election,
  createElection,
  Campaign,
  Ticket: NativeTicket,
  status,
  MAX_TICKETS,
  CHECK_EVERY,
};
