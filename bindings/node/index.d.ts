// Type declarations of elect-node. Resource names are typed as a union of
// string literals: `createElection<'echo' | 'reports'>()` (or
// `new Election<'echo' | 'reports'>()`) accepts only those names, as the
// framework's `BeanElectionBase<'echo'>` does.

/** Options of every call; defaults given to `createElection` apply to each. */
export interface ElectionOptions {
  /** How many owners at once, 1 to 4096 (default 1). Every live participant must agree. */
  tickets?: number;
  /** The run directory (default: $ELECT_DIR, else $XDG_RUNTIME_DIR/elect, else /tmp/elect-<uid>). */
  dir?: string;
  /** How `status` describes this holder (default: the command line). */
  label?: string;
}

/** Options of the Promise form of `obtain`. */
export interface ObtainOptions extends ElectionOptions {
  /** Milliseconds to wait; the Promise resolves to null when none came. 0 tries once. null or Infinity: no limit. */
  timeout?: number | null;
  /** Aborting ends the wait at once; the Promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of the campaign form of `obtain`. */
export interface CampaignOptions extends ElectionOptions {
  /** After ownership ends by release or loss, compete again (default false). Resigning always ends the campaign. */
  requeue?: boolean;
  /** Milliseconds to wait for each win; the campaign ends without owning when none came. */
  timeout?: number | null;
  /** How often an owner checks that its ticket was not lost, in ms (default 250). */
  checkEvery?: number;
}

/** Why ownership ended; handed to the cleanup. */
export type Ending = 'released' | 'lost' | 'resigned';

/** What a holder wrote into its slot file. */
export interface HolderRecord {
  pid: number;
  /** RFC 3339, UTC, to the second. */
  since: string;
  label: string;
  token: number;
  command_pid?: number;
}

/** One slot, as the kernel sees it now (the contract's JSON). */
export interface SlotStatus extends Partial<HolderRecord> {
  slot: number;
  held: boolean;
  /** The process that holds the lock now, as the kernel shows it. */
  lock_pid?: number;
  /** Whether the record's pid still runs. */
  pid_alive?: boolean;
}

export interface ResourceStatus<R extends string = string> {
  name: R;
  tickets: number;
  slots: SlotStatus[];
  /** The pids waiting in line, in arrival order. */
  waiters?: number[];
}

export interface Status {
  dir: string;
  resources: ResourceStatus[];
}

/**
 * A ticket: while it is held, this process owns one slot. `release()` frees
 * it (a second call does nothing); so does the garbage collector once
 * nothing refers to it, and the kernel when the process dies.
 */
export declare class Ticket {
  private constructor();
  /** The resource name. */
  readonly name: string;
  /** The slot held, 0-based. */
  readonly slot: number;
  /** The fencing token: greater than every earlier acquisition's of this resource. */
  readonly token: number;
  /** The fencing token, exact whatever its size. */
  readonly tokenBigInt: bigint;
  /** Whether the ticket still holds its slot (false after release, or once the run directory was removed). */
  isHeld(): boolean;
  /** The record written into the slot file; null once released. */
  record(): HolderRecord | null;
  /** Releases the slot now; idempotent. */
  release(): void;
  [Symbol.dispose](): void;
}

/** Ends ownership; the Promise settles once the cleanup has run and the ticket is released. */
export type Release = () => Promise<void>;

/** Runs in the process that wins; starts the owned work and returns. */
export type OnObtain = (release: Release, ticket: Ticket) => unknown;

/** Runs when ownership ends; may be async: the ticket is released after it settles. */
export type Cleanup = (ending: Ending) => unknown;

/** A campaign started by `obtain(resource, onObtain, ...)`. Not constructed directly. */
export declare class Campaign {
  private constructor();
  /** Settles when the campaign has ended; rejects with the error that ended it, if one did. */
  readonly ended: Promise<void>;
  /** The ticket while this campaign owns the resource, else null. */
  readonly ticket: Ticket | null;
  /** Whether this campaign owns the resource now. */
  readonly owner: boolean;
  /** Stops competing (ends a wait, or ends ownership and runs the cleanup with 'resigned'); settles once the campaign has ended. */
  resign(): Promise<void>;
}

export declare class Election<R extends string = string> {
  constructor(defaults?: ElectionOptions);

  /** The framework's campaign: compete in the background; `onObtain` runs on winning, `cleanup` when ownership ends. */
  obtain(resource: R, onObtain: OnObtain, cleanup?: Cleanup | null, options?: CampaignOptions): Campaign;
  obtain(resource: R, onObtain: OnObtain, options?: CampaignOptions): Campaign;
  /** Waits for a ticket without blocking the event loop; null when `timeout` ran out. */
  obtain(resource: R, options: ObtainOptions & { timeout: number }): Promise<Ticket | null>;
  obtain(resource: R, options?: ObtainOptions): Promise<Ticket>;

  /** A free ticket now, or null; never waits. */
  tryObtain(resource: R, options?: ElectionOptions): Ticket | null;

  /** Who holds the resource's slots and who waits for one. */
  status(resource: R, options?: ElectionOptions): ResourceStatus<R>;
  /** Every resource of the run directory. */
  status(): Status;
}

/** `new Election<R>(defaults)`. */
export declare function createElection<R extends string = string>(defaults?: ElectionOptions): Election<R>;

/** The default elections (any resource name), as the framework's `scope.election`. */
export declare const election: Election<string>;

/** The status of a run directory: every resource in it, or the one named. */
export declare function status(options?: { dir?: string; name?: string }): Status;

/** The most tickets a resource may have (4096). */
export declare const MAX_TICKETS: number;

/** The default period of an owner's loss check, in ms (250). */
export declare const CHECK_EVERY: number;

/** The `code` of every Error elect-node makes. */
export type ErrorCode =
  | 'ELECT_INVALID_NAME'
  | 'ELECT_INVALID_TICKETS'
  | 'ELECT_INVALID_OPTION'
  | 'ELECT_INVALID_TIMEOUT'
  | 'ELECT_NO_RUN_DIR'
  | 'ELECT_UNSAFE'
  | 'ELECT_TICKET_MISMATCH'
  | 'ELECT_TOKEN_DAMAGED'
  | 'ELECT_TOKEN_EXHAUSTED'
  | 'ELECT_IO'
  | 'ELECT_CANCELLED'
  | 'ELECT_NOT_BUILT'
  | 'ELECT_ERROR';
