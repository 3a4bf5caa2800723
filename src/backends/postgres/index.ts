// waitlock's locks in PostgreSQL: session advisory locks through Bun's SQL client.
// One session per lease (sql.ts says which locks; session.ts how the session is set up;
// lease.ts how a held lock is watched). Checks, lists and --done use one more session.
import { BusyError, CancelledError, EXIT, TimeoutError, UsageError, WaitlockError } from "../../errors";
import { debug } from "../../log";
import { isConnectionError, isLockTimeout, isMissingTable, isPrivilegeError } from "./errors";
import type { AcquireOptions, Backend, DoneOutcome, HolderDescription, Lease, RemoteHolder, RemoteWaiter } from "../../backend";
import { PostgresLease } from "./lease";
import { passwordFromFile } from "./pgpass";
import { listen, Session, userTimeout } from "./session";
import * as SQLText from "./sql";
import { describeTarget, parsePostgresUrl, type PostgresTarget } from "./url";

export type { Backend, DoneRequest, Lease } from "../../backend";

/** How often a semaphore's first waiter looks again without a notification (a holder killed with SIGKILL notifies nobody). */
const RECHECK_MS = 250;
/** How often a waiter whose session a server restart ended tries to connect again. */
const RECONNECT_MS = 250;

interface Taken {
  slot: number;
  /** a waiter's description was written on the way */
  described: boolean;
  /** the fencing token, when the holder was described in the round trip that took the slot */
  token?: string;
}

/** A row as the server sends it: RemoteHolder's fields, three under their SQL names. */
type Row = Pick<RemoteHolder, "status" | "shared" | "name" | "slot" | "slots" | "token" | "host" | "pid" | "owner" | "uid" | "command" | "acquired" | "request"> & {
  backend_pid: number;
  username: string | null;
  client_addr: string | null;
};

const toHolder = (r: Row): RemoteHolder => ({
  status: r.status,
  backendPid: r.backend_pid,
  shared: r.shared,
  name: r.name,
  slot: r.slot,
  slots: r.slots,
  token: r.token,
  host: r.host,
  pid: r.pid,
  owner: r.owner,
  uid: r.uid,
  user: r.username,
  command: r.command,
  acquired: r.acquired,
  request: r.request,
  clientAddr: r.client_addr,
});

const sqlState = (e: unknown): unknown => (e as { cause?: unknown })?.cause ?? e;

class Postgres implements Backend {
  readonly label: string;
  readonly url: string;
  readonly bounds: Backend["bounds"];
  private password: string | undefined | null = null;
  private management: Session | undefined;

  constructor(private readonly target: PostgresTarget) {
    this.label = target.label;
    this.url = describeTarget(target);
    this.bounds = { heartbeat: target.heartbeat, confirmTimeout: target.confirmTimeout, releaseTimeout: target.releaseTimeout, grace: target.grace };
  }

  private secret(): string | undefined {
    if (this.password === null) {
      const t = this.target;
      this.password = t.password ?? passwordFromFile(t.hostname, t.port, t.database, t.user);
    }
    return this.password;
  }

  /** Time to connect, or for a round trip: connect_timeout, shortened by a deadline but never below a second. */
  private connectMs(deadline: number): number {
    const limit = this.target.connectTimeout * 1000;
    return Number.isFinite(deadline) ? Math.min(limit, Math.max(1000, deadline - performance.now())) : limit;
  }

  private open(deadline: number, findSocket: boolean, alongside?: string): Promise<Session> {
    return Session.open(this.target, this.secret(), this.connectMs(deadline), findSocket, alongside);
  }

  async acquire(name: string, opts: AcquireOptions): Promise<Lease> {
    const slots = opts.slots ?? 1;
    const preferred = opts.preferred ?? 0;
    const shared = opts.shared ?? false;
    if (!Number.isInteger(slots) || slots < 1) throw new UsageError("slots", `${slots} is not a whole number ≥ 1`);
    if (!Number.isInteger(preferred) || preferred < 0 || preferred >= slots) throw new UsageError("WAITLOCK_SLOT", `slot ${preferred} does not exist (0..${slots - 1})`);
    if (shared && slots > 1) throw new UsageError("--shared", "a shared lock has one slot");
    const deadline = opts.timeout === undefined ? Infinity : performance.now() + opts.timeout * 1000;
    // A mutex's first try, with the holder's description, goes with the session's first statement.
    const firstTry = slots === 1 ? SQLText.tryMutexDescribed(shared, name, opts.holder, userTimeout(this.target)) : undefined;
    let dropped: number | undefined;
    for (;;) {
      if (opts.signal?.aborted) throw new CancelledError(name);
      let session: Session;
      try {
        session = await this.open(deadline, true, firstTry);
      } catch (e) {
        // After a server restart ended our wait, connecting fails until the server is back.
        const retry = dropped !== undefined && e instanceof WaitlockError && e.exitCode === EXIT.TEMPFAIL;
        const until = Number.isFinite(deadline) ? deadline : dropped! + this.target.connectTimeout * 1000;
        if (!retry || performance.now() + RECONNECT_MS >= until) throw e;
        await Bun.sleep(RECONNECT_MS);
        continue;
      }
      const stop = () => session.stop();
      opts.signal?.addEventListener("abort", stop);
      // An abort while connecting came before the listener: it would never be heard.
      if (opts.signal?.aborted) stop();
      try {
        const taken = await this.take(session, name, slots, preferred, shared, deadline, opts.timeout, opts.holder);
        const describedAt = performance.now();
        const token = taken.token ?? (await this.describe(session, name, taken.slot, slots, shared, opts.holder, this.connectMs(deadline), taken.described));
        // Won as the abort came: the session's end (below) lets go.
        if (opts.signal?.aborted) throw new CancelledError(name);
        debug(`postgres ${this.label}: '${name}' slot ${taken.slot}/${slots} taken, token ${token}`);
        return new PostgresLease(session, this.target, name, taken.slot, slots, shared, token, describedAt);
      } catch (e) {
        const wasDropped = session.isClosed && isConnectionError(sqlState(e)) && opts.timeout !== 0;
        await session.close();
        if (opts.signal?.aborted) throw new CancelledError(name);
        if (!wasDropped || performance.now() >= deadline) throw e;
        debug(`postgres ${this.label}: the session ended while waiting for '${name}' (${(e as Error).message}); connecting again`);
        dropped = performance.now();
      } finally {
        opts.signal?.removeEventListener("abort", stop);
      }
    }
  }

  /** lock_timeout for the time left before `deadline` ('0': for ever). */
  private lockTimeout(deadline: number): string {
    return Number.isFinite(deadline) ? `${Math.max(1, Math.ceil(deadline - performance.now()))}ms` : "0";
  }

  /**
   * A wait in the server's queue: answered by lock_timeout at the deadline; a server that has
   * not answered a second later is not answering (75: -t bounds the whole call).
   */
  private waitMs(deadline: number): number {
    return Number.isFinite(deadline) ? deadline - performance.now() + Math.min(1000, this.target.connectTimeout * 1000) : Infinity;
  }

  /**
   * A slot of NAME for this session. The first try costs no more than an uncontended take
   * needs (a mutex's came with the session's first message, `opening`, and described the
   * holder when it took slot 0); only a request that found the lock busy describes itself
   * as a waiter (`described`: its row is to be dropped with the holder's description).
   */
  private async take(session: Session, name: string, slots: number, preferred: number, shared: boolean, deadline: number, timeout: number | undefined, holder: HolderDescription): Promise<Taken> {
    const timedOut = () => new TimeoutError(name, timeout ?? 0);
    const once = async (leaveQueue: boolean): Promise<{ slot: number; token?: string } | undefined> => {
      if (slots === 1 && session.opening) {
        const taken = session.opening[0] as { token: string } | undefined;
        return taken && { slot: 0, token: taken.token };
      }
      return (await session.query<{ slot: number }>(SQLText.trySlots(shared, leaveQueue), [name, slots, preferred], `locking '${name}'`, this.connectMs(deadline)))[0];
    };
    const waitFor = async (text: string, doing: string) => {
      try {
        await session.query(text, [name, this.lockTimeout(deadline)], doing, this.waitMs(deadline));
      } catch (e) {
        if (isLockTimeout(sqlState(e))) throw timedOut();
        throw e;
      }
    };
    const queued = () => this.describeWaiter(session, name, slots, shared, holder, deadline);
    if (timeout === 0 || performance.now() >= deadline) {
      const got = await once(false);
      if (got) return { slot: got.slot, described: false, token: got.token };
      throw timeout === 0 ? new BusyError(name) : timedOut();
    }
    if (slots === 1) {
      const got = await once(false);
      if (got) return { slot: got.slot, described: false, token: got.token };
      // The holders table took this session's row: describe the waiter in the wait's round trip.
      if (session.opening) {
        const waited = await this.waitDescribed(session, name, shared, deadline, timedOut, holder);
        if (waited) return { slot: 0, described: true, token: waited.token };
      }
      const described = await queued();
      if (!described) {
        await waitFor(SQLText.waitSlot0(shared), `waiting for '${name}'`);
        return { slot: 0, described };
      }
      return { slot: 0, described, token: (await this.waitDescribed(session, name, shared, deadline, timedOut))!.token };
    }
    let described = false;
    const [turnstile] = await session.query<{ got: boolean }>(SQLText.TRY_QUEUE, [name], `queueing for '${name}'`, this.connectMs(deadline));
    if (!turnstile!.got) {
      described = await queued();
      await waitFor(SQLText.WAIT_QUEUE, `queueing for '${name}'`);
    }
    // First in the queue: take a slot as soon as one is released. Listen before looking
    // again, so that a release between the look and the wait is not missed.
    const first = await once(true);
    if (first) return { slot: first.slot, described };
    if (!described) described = await queued();
    let wake: () => void = () => {};
    const listener = await listen(this.target, this.secret(), SQLText.releaseChannel(name), () => wake(), this.connectMs(deadline)).catch((e: Error) => {
      debug(`postgres ${this.label}: no notifications for '${name}' (${e.message}): looking every ${RECHECK_MS} ms only`);
      return { close() {} };
    });
    try {
      for (;;) {
        const got = await once(true);
        if (got) return { slot: got.slot, described };
        const left = deadline - performance.now();
        if (left <= 0) {
          await session.query(SQLText.LEAVE_QUEUE, [name], `leaving the queue of '${name}'`);
          throw timedOut();
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(RECHECK_MS, left));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      listener.close();
    }
  }

  /**
   * A waiter's wait for slot 0 of NAME with its holder description in the same round trip;
   * with `waiter`, its waiter description too (written before the wait). Resolves with the
   * fencing token, no token when granted but not described (the waiter row was gone:
   * describe() then does it), or undefined when the server refused `waiter`'s row (a missing
   * table or privilege: nothing was waited for). Without `waiter` (a row written already),
   * a missing holders table is that no token. Throws `timedOut()` when lock_timeout withdrew
   * the request.
   */
  private async waitDescribed(session: Session, name: string, shared: boolean, deadline: number, timedOut: () => TimeoutError, waiter?: HolderDescription): Promise<{ token?: string } | undefined> {
    const text = SQLText.waitSlot0Described(shared, name, this.lockTimeout(deadline), waiter);
    try {
      const results = await session.statements<{ token: string }>(text, `waiting for '${name}'`, this.waitMs(deadline));
      return { token: results.at(-1)?.[0]?.token };
    } catch (e) {
      const cause = sqlState(e);
      if (isLockTimeout(cause)) throw timedOut();
      // The waiter's row comes first, the holder's only once the wait was granted.
      if (isMissingTable(cause) || (waiter && isPrivilegeError(cause))) return waiter ? undefined : {};
      throw e;
    }
  }

  /**
   * Describes this session as a waiter of NAME for --list on every host; true when described.
   * The description only informs: a table that cannot be made or written (an older setup, no
   * privilege) leaves the waiter undescribed, still waiting. Lost connections are thrown.
   */
  private async describeWaiter(session: Session, name: string, slots: number, shared: boolean, h: HolderDescription, deadline: number): Promise<boolean> {
    const params = [name, slots, shared, h.host, h.pid, h.owner, h.uid, h.user, h.command];
    const describe = () => session.query(SQLText.DESCRIBE_WAITER, params, `describing a waiter of '${name}'`, this.connectMs(deadline));
    try {
      try {
        await describe();
      } catch (e) {
        if (!isMissingTable(sqlState(e))) throw e;
        await session.script(SQLText.SETUP, "creating table waitlock.waiters");
        await describe();
      }
      return true;
    } catch (e) {
      if (session.isClosed || isConnectionError(sqlState(e)) || (e instanceof WaitlockError && e.exitCode === EXIT.TEMPFAIL)) throw e;
      debug(`postgres ${this.label}: waiting for '${name}' undescribed: ${(e as Error).message}`);
      return false;
    }
  }

  /** Describes the holder (dropping its waiter description when `waited` wrote one); returns the fencing token. */
  private async describe(session: Session, name: string, slot: number, slots: number, shared: boolean, h: HolderDescription, timeoutMs: number, waited: boolean): Promise<string> {
    const params = [name, slot, slots, shared, h.host, h.pid, h.owner, h.uid, h.user, h.command];
    const doing = `describing the holder of '${name}'`;
    try {
      return (await session.query<{ token: string }>(waited ? SQLText.DESCRIBE_AFTER_WAIT : SQLText.DESCRIBE, params, doing, timeoutMs))[0]!.token;
    } catch (e) {
      if (!isMissingTable(sqlState(e))) throw this.privilegeHint(e);
      debug(`postgres ${this.label}: creating schema waitlock and table waitlock.holders`);
      try {
        await session.script(SQLText.SETUP, "creating table waitlock.holders");
        return (await session.query<{ token: string }>(SQLText.DESCRIBE, params, doing, timeoutMs))[0]!.token;
      } catch (err) {
        throw this.privilegeHint(err);
      }
    }
  }

  private privilegeHint(e: unknown): unknown {
    if (e instanceof WaitlockError && e.exitCode === EXIT.PERMISSION)
      return new WaitlockError(EXIT.PERMISSION, e.context, `${e.message} (waitlock keeps holder descriptions in table waitlock.holders: see the man page for the SQL that sets it up)`);
    return e;
  }

  private async managementSession(timeoutMs: number): Promise<Session> {
    if (!this.management || this.management.isClosed) this.management = await Session.open(this.target, this.secret(), timeoutMs, false);
    return this.management;
  }

  private async ask<T>(text: string, params: unknown[], doing: string, timeoutMs = this.target.connectTimeout * 1000): Promise<T[]> {
    const started = performance.now();
    const session = await this.managementSession(timeoutMs);
    return session.query<T>(text, params, doing, Math.max(1, timeoutMs - (performance.now() - started)));
  }

  async check(name: string, slots: number, opts: { timeout?: number; shared?: boolean } = {}): Promise<number> {
    const ms = (opts.timeout ?? this.target.connectTimeout) * 1000;
    const [row] = await this.ask<{ free: number }>(SQLText.FREE_SLOTS, [name, slots, opts.shared ?? false], `checking '${name}'`, ms);
    return row!.free;
  }

  async list(opts: { name?: string; all?: boolean; timeout?: number } = {}): Promise<RemoteHolder[]> {
    const ms = (opts.timeout ?? this.target.connectTimeout) * 1000;
    try {
      return (await this.ask<Row>(SQLText.LIST, [opts.name ?? null, opts.all ?? false], "listing locks", ms)).map(toHolder);
    } catch (e) {
      if (!isMissingTable(sqlState(e))) throw e;
      if (!opts.all || opts.name) return [];
      const rows = await this.ask<{ backend_pid: number; shared: boolean; client_addr: string | null }>(SQLText.LIST_UNDESCRIBED, [], "listing locks", ms);
      return rows.map((r) => ({ ...toHolder({ status: "unknown", backend_pid: r.backend_pid, shared: r.shared, client_addr: r.client_addr } as Row) }));
    }
  }

  async waiters(opts: { name?: string; timeout?: number } = {}): Promise<RemoteWaiter[]> {
    const ms = (opts.timeout ?? this.target.connectTimeout) * 1000;
    type WaiterRow = Omit<RemoteWaiter, "backendPid" | "user"> & { backend_pid: number; username: string };
    try {
      const rows = await this.ask<WaiterRow>(SQLText.LIST_WAITERS, [opts.name ?? null], "listing waiters", ms);
      return rows.map(({ backend_pid, username, ...w }) => ({ ...w, backendPid: backend_pid, user: username }));
    } catch (e) {
      // Nobody has waited yet with this version, or the role may not read the table (an
      // older setup): no waiter is described for it, and the holders are still listed.
      if (isMissingTable(sqlState(e)) || isPrivilegeError(sqlState(e))) return [];
      throw e;
    }
  }

  async done(name: string, opts: { host: string; ancestors: number[]; timeout: number }): Promise<DoneOutcome> {
    const deadline = performance.now() + opts.timeout * 1000;
    // Every round trip within the caller's bound (never below a second), as for -t.
    const ms = Math.min(this.target.connectTimeout, Math.max(1, opts.timeout)) * 1000;
    let wake: () => void = () => {};
    const listener = await listen(this.target, this.secret(), SQLText.releaseChannel(name), () => wake(), ms);
    try {
      let asked: RemoteHolder[];
      try {
        asked = (await this.ask<Row>(SQLText.REQUEST_DONE, [name, opts.host, opts.ancestors], `asking the holders of '${name}' to release`, ms)).map(toHolder);
      } catch (e) {
        if (isMissingTable(sqlState(e))) return { asked: [], remaining: [] };
        throw e;
      }
      let pids = asked.map((h) => h.backendPid);
      while (pids.length > 0) {
        const rows = await this.ask<{ backend_pid: number }>(SQLText.STILL_HELD, [name, pids], `waiting for '${name}' to be released`, ms);
        pids = rows.map((r) => r.backend_pid);
        const left = deadline - performance.now();
        if (pids.length === 0 || left <= 0) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(RECHECK_MS, left));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return { asked, remaining: asked.filter((h) => pids.includes(h.backendPid)) };
    } finally {
      listener.close();
    }
  }

  async close(): Promise<void> {
    await this.management?.close();
    this.management = undefined;
  }
}

/**
 * A PostgreSQL backend for `url` (postgres:// or postgresql://; the man page lists its
 * parameters). Connects lazily. Throws UsageError (exit 3) for a malformed URL, without
 * repeating it.
 */
export function connectPostgres(url: string, env: Record<string, string | undefined> = process.env): Backend {
  return new Postgres(parsePostgresUrl(url, env));
}
