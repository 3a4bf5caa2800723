// The seam between the modes and a lock engine on the network (ARCHITECTURE invariant 7):
// what a mode may ask of PostgreSQL or Redis. The modes see only these types; the CLI picks
// the implementation (src/backends/), so no mode imports a backend.
import type { LockLostError } from "./errors";

/** What `waitlock --done` asked of a holder: stop its work, or (its own owner asked) only release. */
export type DoneRequest = "stop" | "release";

/** A held slot on a network engine. */
export interface Lease {
  readonly name: string;
  /** 0-based */
  readonly slot: number;
  readonly slots: number;
  readonly shared: boolean;
  /** the fencing token: a decimal integer, larger for every later holder of the name */
  readonly token: string;
  /** our descriptor of the session's connection, for a command to inherit (Linux; else undefined) */
  readonly socketFd: number | undefined;
  /**
   * resolves (never rejects) with the error to exit with (7) once the lock is lost, also
   * when release() finds it no longer held (then before release() resolves); never after
   */
  readonly lost: Promise<LockLostError>;
  /** resolves when `waitlock --done` asks this holder to stop (or only to release) */
  readonly requested: Promise<DoneRequest>;
  /**
   * Unlocks and ends the session; never throws (the engine frees what a dead session held).
   * When the engine says the lock was no longer ours, `lost` resolves before this does.
   */
  release(): Promise<void>;
}

/** Who holds a lease, as --list shows it on every host. */
export interface HolderDescription {
  host: string;
  /** the process that holds the session (waitlock itself, or its detached holder) */
  pid: number;
  /** the process the lock is held for */
  owner: number;
  uid: number;
  user: string;
  command: string;
}

export interface AcquireOptions {
  /** N ≥ 1 slots (default 1: a mutex) */
  slots?: number;
  /** 0-based slot to try first (default 0) */
  preferred?: number;
  /** a shared (reader) lock; only with one slot */
  shared?: boolean;
  /** seconds: undefined waits for ever, 0 tries once */
  timeout?: number;
  holder: HolderDescription;
  /**
   * Gives the request up (^C, the caller gone): the engine's queue is left at once, not when
   * the session is found dead, and acquire rejects with CancelledError (2), also when a slot
   * was won as the abort came (it is let go first): no lease is returned after an abort.
   */
  signal?: AbortSignal;
}

/** One row of --list. Times in Unix seconds. Fields other than status and backendPid are null for an 'unknown' lock (Redis still knows its name, slot and expiresIn). */
export interface RemoteHolder {
  /** active: the session holds the slot; stale: described but nothing held; unknown: a lock in waitlock's space nobody described */
  status: "active" | "stale" | "unknown";
  /** the engine's id of the holding session (PostgreSQL: the backend's PID; Redis: the client id) */
  backendPid: number;
  shared: boolean | null;
  name: string | null;
  slot: number | null;
  slots: number | null;
  token: string | null;
  host: string | null;
  pid: number | null;
  owner: number | null;
  uid: number | null;
  user: string | null;
  command: string | null;
  acquired: number | null;
  request: DoneRequest | null;
  /** the holder's address as the server sees it (null without the privilege to see it) */
  clientAddr: string | null;
  /** seconds left on the lease before the engine frees it unrenewed (Redis), else null */
  expiresIn?: number | null;
}

/** A request queued for a lock on a network engine, as --list shows it on every host: who waits (as a holder is described), and where in the queue. */
export interface RemoteWaiter extends HolderDescription {
  name: string;
  /** 1-based place in NAME's queue: 1 is served next */
  position: number;
  /** the engine's id of the waiting session (PostgreSQL: the backend's PID; Redis: the client id) */
  backendPid: number;
  shared: boolean;
  slots: number;
  /** Unix seconds (the server's clock): when it joined the queue */
  since: number;
}

export interface DoneOutcome {
  /** the holders that were asked */
  asked: RemoteHolder[];
  /** those of them that still held their slot when the time was up */
  remaining: RemoteHolder[];
}

/** A lock engine on the network: PostgreSQL (src/backends/postgres) or Redis (src/backends/redis). */
export interface Backend {
  /** `host:port`, for messages */
  readonly label: string;
  /** the URL without password or parameters */
  readonly url: string;
  /**
   * Seconds: how often a lease is checked, when an unanswered check makes it lost, when the
   * engine frees a silent host's locks, and how long a lost lease's command has between
   * SIGTERM and SIGKILL (confirmTimeout + grace < releaseTimeout).
   */
  readonly bounds: { heartbeat: number; confirmTimeout: number; releaseTimeout: number; grace: number };
  /**
   * Takes a slot of NAME on a session of its own. Throws BusyError (1) when `timeout` is 0
   * and every slot is held, TimeoutError (2) when the timeout passed (the request is
   * withdrawn from the engine), UsageError (3) for bad slots, WaitlockError 75 when the
   * server cannot be reached or does not answer, 5 when the login or a privilege is
   * refused, 4 otherwise.
   */
  acquire(name: string, opts: AcquireOptions): Promise<Lease>;
  /**
   * How many of NAME's `slots` slots a request could take now (0: none); a `shared` request
   * also counts a slot held only by readers. `timeout` bounds the call in seconds (default:
   * the connect timeout).
   */
  check(name: string, slots: number, opts?: { timeout?: number; shared?: boolean }): Promise<number>;
  /**
   * Held slots (of NAME, or of every name); `all` adds stale descriptions and undescribed
   * locks. `timeout` bounds the call in seconds (default: the connect timeout).
   */
  list(opts?: { name?: string; all?: boolean; timeout?: number }): Promise<RemoteHolder[]>;
  /**
   * The requests queued for NAME (or for every name) whose session is alive, each name's in
   * queue order. A waiter describes itself only once its first try found the lock busy, so a
   * request still on that first try is not among them. `timeout` bounds the call in seconds
   * (default: the connect timeout).
   */
  waiters(opts?: { name?: string; timeout?: number }): Promise<RemoteWaiter[]>;
  /**
   * Asks every holder of NAME to stop its work (holders whose owner is in `ancestors` on
   * `host`: only to release), then waits up to `timeout` seconds for their slots to be free.
   */
  done(name: string, opts: { host: string; ancestors: number[]; timeout: number }): Promise<DoneOutcome>;
  /** Ends the sessions of checks and lists (not those of leases). */
  close(): Promise<void>;
}
