// waitlock's locks in Redis, through Bun's built-in client: a key per slot with a time to
// live, taken, extended and released by Lua scripts (scripts.ts says which keys; lease.ts
// how a held slot is kept). One connection per lease; checks, lists and --done use one
// more. Waiters queue in arrival order and are woken by a release's publication.
import type { AcquireOptions, Backend, DoneOutcome, Lease, RemoteHolder, RemoteWaiter } from "../../backend";
import { BusyError, CancelledError, EXIT, TimeoutError, UsageError, WaitlockError } from "../../errors";
import { debug } from "../../log";
import { Connection } from "./connection";
import { RedisLease } from "./lease";
import * as Script from "./scripts";
import { describeTarget, parseRedisUrl, type RedisTarget } from "./url";


/** How often a waiter looks again without a notification (an expired lease notifies nobody); also how often it renews its place in the queue. */
const RECHECK_MS = 250;
/** A waiter that stops renewing its place (killed) is dropped from the queue this long after its last renewal. */
const WAITER_TTL_MS = 1000;

const newId = (): string => crypto.randomUUID().replaceAll("-", "");

/** A held slot's key, the lease id in it, and the holder as --list shows it. */
interface Held {
  key: string;
  lease: string;
  holder: RemoteHolder;
}

/** A DESCRIBE row ({key, ms left, field, value, ...}). */
function toHeld(row: (string | number)[]): Held | undefined {
  const [key, ttl, ...pairs] = row;
  const parsed = Script.parseHolderKey(String(key));
  if (!parsed) return undefined;
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < pairs.length; i += 2) f[String(pairs[i])] = String(pairs[i + 1]);
  const described = f.lease !== undefined;
  const num = (v: string | undefined) => (v === undefined || v === "" || !Number.isFinite(Number(v)) ? null : Number(v));
  const request = f.request === "stop" || f.request === "release" ? f.request : null;
  const holder: RemoteHolder = {
    status: described ? "active" : "unknown",
    backendPid: num(f.client) ?? 0,
    shared: described ? f.shared === "1" : null,
    name: parsed[0],
    slot: parsed[1],
    slots: num(f.slots),
    token: f.token ?? null,
    host: f.host ?? null,
    pid: num(f.pid),
    owner: num(f.owner),
    uid: num(f.uid),
    user: f.user ?? null,
    command: f.command ?? null,
    acquired: num(f.acquired),
    request,
    clientAddr: null,
    expiresIn: typeof ttl === "number" && ttl >= 0 ? ttl / 1000 : null,
  };
  return { key: String(key), lease: f.lease ?? "", holder };
}

/** A promise that `wake()`, an abort of `signal` or `ms` milliseconds resolve, whichever comes first. */
function nap(ms: number, waker: { wake: () => void }, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    waker.wake = done;
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done);
  });
}

class Redis implements Backend {
  readonly label: string;
  readonly url: string;
  readonly bounds: Backend["bounds"];
  private management: Connection | undefined;

  constructor(private readonly target: RedisTarget) {
    this.label = target.label;
    this.url = describeTarget(target);
    this.bounds = { heartbeat: target.heartbeat, confirmTimeout: target.confirmTimeout, releaseTimeout: target.ttl, grace: target.grace };
  }

  /** Time to connect, or for a round trip: connect_timeout, shortened by a deadline but never below a second. */
  private connectMs(deadline: number): number {
    const limit = this.target.connectTimeout * 1000;
    return Number.isFinite(deadline) ? Math.min(limit, Math.max(1000, deadline - performance.now())) : limit;
  }

  async acquire(name: string, opts: AcquireOptions): Promise<Lease> {
    const slots = opts.slots ?? 1;
    const preferred = opts.preferred ?? 0;
    if (!Number.isInteger(slots) || slots < 1) throw new UsageError("slots", `${slots} is not a whole number ≥ 1`);
    if (!Number.isInteger(preferred) || preferred < 0 || preferred >= slots) throw new UsageError("WAITLOCK_SLOT", `slot ${preferred} does not exist (0..${slots - 1})`);
    const shared = opts.shared ?? false;
    if (shared && slots > 1) throw new UsageError("--shared", "a shared lock has one slot");
    const deadline = opts.timeout === undefined ? Infinity : performance.now() + opts.timeout * 1000;
    if (opts.signal?.aborted) throw new CancelledError(name);
    const conn = await Connection.open(this.target, this.connectMs(deadline));
    try {
      const lease = newId();
      const h = opts.holder;
      const attempt = async (waiter: string) => {
        const sentAt = performance.now();
        const got = await conn.eval<[number, string] | null>(
          Script.ACQUIRE,
          [Script.base(name)],
          [slots, preferred, lease, Math.round(this.target.ttl * 1000), waiter, WAITER_TTL_MS, h.host, h.pid, h.owner, h.uid, h.user, h.command, conn.clientId, shared ? 1 : 0],
          `locking '${name}'`,
          this.connectMs(deadline),
        );
        return got && { slot: got[0], token: got[1], sentAt };
      };
      const got = (await attempt("")) ?? (await this.wait(conn, name, opts.timeout, deadline, attempt, shared ? "r" : "w", opts.signal));
      debug(`redis ${this.label}: '${name}' slot ${got.slot}/${slots}${shared ? " (shared)" : ""} taken, token ${got.token}`);
      const held = new RedisLease(conn, this.target, lease, name, got.slot, slots, shared, got.token, got.sentAt);
      // Won as the abort came: let go at once, not at the key's ttl.
      if (opts.signal?.aborted) {
        await held.release();
        throw new CancelledError(name);
      }
      return held;
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /**
   * Queues for NAME (`kind` r: a shared waiter, w: an exclusive one) until a slot is ours or
   * the deadline passes (then leaves the queue and throws BusyError for `timeout` 0,
   * TimeoutError otherwise) or `signal` aborts (leaves the queue, throws CancelledError).
   * Subscribes before queueing, so that a release between a look and the wait is not missed.
   */
  private async wait<T>(conn: Connection, name: string, timeout: number | undefined, deadline: number, attempt: (waiter: string) => Promise<T | null>, kind: "r" | "w", signal: AbortSignal | undefined): Promise<T> {
    if (timeout === 0 || performance.now() >= deadline) throw timeout === 0 ? new BusyError(name) : new TimeoutError(name, timeout ?? 0);
    const waiter = kind + newId();
    const waker = { wake: () => {} };
    const subscribe = () =>
      conn.subscribe(Script.releasedChannel(name), () => waker.wake(), this.connectMs(deadline)).catch((e: Error) => {
        debug(`redis ${this.label}: no notifications for '${name}' (${e.message}): looking every ${RECHECK_MS} ms only`);
        return { close() {} };
      });
    let sub = await subscribe();
    let dropped: number | undefined;
    const leave = (by: number) => conn.eval(Script.LEAVE, [Script.base(name)], [waiter], `leaving the queue of '${name}'`, this.connectMs(by));
    try {
      for (;;) {
        if (signal?.aborted) {
          await leave(performance.now());
          throw new CancelledError(name);
        }
        let got: T | null;
        try {
          got = await attempt(waiter);
          dropped = undefined;
        } catch (e) {
          // After a server restart ended our connection, connecting fails until the server is
          // back: keep trying while the timeout allows (without one, for connect_timeout).
          if (conn.connected || !(e instanceof WaitlockError) || e.exitCode !== EXIT.TEMPFAIL) throw e;
          dropped ??= performance.now();
          const until = Number.isFinite(deadline) ? deadline : dropped + this.target.connectTimeout * 1000;
          if (performance.now() + RECHECK_MS >= until) throw e;
          debug(`redis ${this.label}: waiting for '${name}': ${e.message}; connecting again`);
          await Bun.sleep(RECHECK_MS);
          const reconnected = await conn.reconnect(this.connectMs(deadline)).then(
            () => true,
            () => false,
          );
          if (reconnected) {
            sub.close();
            sub = await subscribe();
          }
          continue;
        }
        if (got) return got;
        const left = deadline - performance.now();
        if (left <= 0) {
          await leave(deadline);
          throw new TimeoutError(name, timeout ?? 0);
        }
        await nap(Math.min(RECHECK_MS, left), waker, signal);
      }
    } finally {
      sub.close();
    }
  }

  private async managementConnection(timeoutMs: number): Promise<Connection> {
    if (!this.management?.connected) {
      this.management?.close();
      this.management = await Connection.open(this.target, timeoutMs);
    }
    return this.management;
  }

  private async ask<T>(script: string, keys: string[], args: (string | number)[], doing: string, timeoutMs = this.target.connectTimeout * 1000): Promise<T> {
    const started = performance.now();
    const conn = await this.managementConnection(timeoutMs);
    return conn.eval<T>(script, keys, args, doing, Math.max(1, timeoutMs - (performance.now() - started)));
  }

  async check(name: string, slots: number, opts: { timeout?: number; shared?: boolean } = {}): Promise<number> {
    return this.ask<number>(Script.FREE, [Script.base(name)], [slots, opts.shared ? 1 : 0], `checking '${name}'`, (opts.timeout ?? this.target.connectTimeout) * 1000);
  }

  /** The keys of NAME (or of every name) that `parse` accepts, found by SCAN within the deadline (performance.now() ms). */
  private async scan(name: string | undefined, parse: (key: string) => string | undefined, conn: Connection, deadline: number): Promise<string[]> {
    const keys = new Set<string>();
    let cursor = "0";
    do {
      const [next, batch] = await conn.send<[string, string[]]>("SCAN", [cursor, "MATCH", Script.namePattern(name), "COUNT", "1000"], "listing locks", Math.max(1, deadline - performance.now()));
      for (const k of batch) {
        const parsed = parse(k);
        if (parsed !== undefined && (name === undefined || parsed === name)) keys.add(k);
      }
      cursor = String(next);
    } while (cursor !== "0");
    return [...keys].sort();
  }

  /**
   * The holders of NAME (or of every name): their keys found by SCAN, then described in one
   * script, all within `timeoutMs` (default: connect_timeout).
   */
  private async holders(name?: string, timeoutMs = this.target.connectTimeout * 1000): Promise<Held[]> {
    const deadline = performance.now() + timeoutMs;
    const conn = await this.managementConnection(timeoutMs);
    const keys = await this.scan(name, (k) => Script.parseHolderKey(k)?.[0], conn, deadline);
    if (keys.length === 0) return [];
    const rows = await conn.eval<(string | number)[][]>(Script.DESCRIBE, keys, [], "listing locks", Math.max(1, deadline - performance.now()));
    return rows.map(toHeld).filter((h): h is Held => h !== undefined);
  }

  /** The queues of NAME (or of every name) found by SCAN, then their live waiters in one script, all within the timeout. */
  async waiters(opts: { name?: string; timeout?: number } = {}): Promise<RemoteWaiter[]> {
    const timeoutMs = (opts.timeout ?? this.target.connectTimeout) * 1000;
    const deadline = performance.now() + timeoutMs;
    const conn = await this.managementConnection(timeoutMs);
    const queues = await this.scan(opts.name, Script.parseQueueKey, conn, deadline);
    if (queues.length === 0) return [];
    const rows = await conn.eval<(string | number)[][]>(Script.WAITERS, queues, [], "listing waiters", Math.max(1, deadline - performance.now()));
    const positions = new Map<string, number>();
    return rows.map(([i, , score, ...pairs]) => {
      const name = Script.parseQueueKey(queues[Number(i) - 1]!)!;
      const f: Record<string, string> = {};
      for (let k = 0; k + 1 < pairs.length; k += 2) f[String(pairs[k])] = String(pairs[k + 1]);
      const position = (positions.get(name) ?? 0) + 1;
      positions.set(name, position);
      return {
        name,
        position,
        backendPid: Number(f.client ?? 0),
        shared: f.shared === "1",
        slots: Number(f.slots ?? 1),
        host: f.host ?? "",
        pid: Number(f.pid ?? 0),
        owner: Number(f.owner ?? 0),
        uid: Number(f.uid ?? 0),
        user: f.user ?? "",
        command: f.command ?? "",
        since: Number(score) / 1e6,
      };
    });
  }

  /** Holders of NAME (or of every name); with `all`, also slots held by keys waitlock did not write ('unknown'). */
  async list(opts: { name?: string; all?: boolean; timeout?: number } = {}): Promise<RemoteHolder[]> {
    const held = await this.holders(opts.name, opts.timeout === undefined ? undefined : opts.timeout * 1000);
    return held.filter((h) => opts.all || h.holder.status === "active").map((h) => h.holder);
  }

  async done(name: string, opts: { host: string; ancestors: number[]; timeout: number }): Promise<DoneOutcome> {
    const deadline = performance.now() + opts.timeout * 1000;
    const holders = (await this.holders(name)).filter((h) => h.holder.status === "active");
    if (holders.length === 0) return { asked: [], remaining: [] };
    const ownOwner = (h: RemoteHolder) => h.host === opts.host && h.owner !== null && opts.ancestors.includes(h.owner);
    const waker = { wake: () => {} };
    const sub = await this.management!.subscribe(Script.releasedChannel(name), () => waker.wake(), this.target.connectTimeout * 1000);
    try {
      const askedKeys = await this.ask<string[]>(
        Script.REQUEST,
        holders.map((h) => h.key),
        holders.flatMap((h) => [h.lease, ownOwner(h.holder) ? "release" : "stop"]),
        `asking the holders of '${name}' to release`,
      );
      const asked = holders.filter((h) => askedKeys.includes(h.key));
      let held = asked.map((h) => h.key);
      while (held.length > 0) {
        const stillHeld = asked.filter((h) => held.includes(h.key));
        held = await this.ask<string[]>(Script.STILL_HELD, stillHeld.map((h) => h.key), stillHeld.map((h) => h.lease), `waiting for '${name}' to be released`);
        const left = deadline - performance.now();
        if (held.length === 0 || left <= 0) break;
        await nap(Math.min(RECHECK_MS, left), waker);
      }
      return { asked: asked.map((h) => h.holder), remaining: asked.filter((h) => held.includes(h.key)).map((h) => h.holder) };
    } finally {
      sub.close();
    }
  }

  async close(): Promise<void> {
    this.management?.close();
    this.management = undefined;
  }
}

/**
 * A Redis backend for `url` (redis:// or rediss://; the man page lists its parameters).
 * Connects lazily. Throws UsageError (exit 3) for a malformed URL, without repeating it.
 */
export function connectRedis(url: string, env: Record<string, string | undefined> = process.env): Backend {
  return new Redis(parseRedisUrl(url, env));
}
