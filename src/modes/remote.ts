// The modes on a network engine (--backend): --exec's lease, --check, --done and --list.
// They see only the seam (src/backend.ts); the CLI hands them the engine.
import { getuid, hostname } from "../../ffi/libc";
import type { Backend, HolderDescription, Lease, RemoteHolder, RemoteWaiter } from "../backend";
import { BusyError, EXIT, TimeoutError, WaitlockError, secondsPhrase } from "../errors";
import type { Row, WaiterRow } from "../format";
import { oneLine } from "../holdertext";
import { debug, notice, statusLineWanted, withoutPasswords } from "../log";
import { DONE_WAIT_SECONDS } from "../options";
import { ancestorsOfSelf } from "../procinfo";
import type { Holding } from "./exec";
import { userNames } from "../users";
import { listLocks, type ListingSource, type ListOptions } from "./list";

/** A wait this long (milliseconds) is worth a line on a terminal. */
const WAITING_NOTICE_MS = 1000;

/**
 * How the engine's --list names a holder: this host, process `pid` holding for `owner`,
 * running `command`. The description is readable by every user of the engine: passwords
 * in URLs on the command line are masked.
 */
export function holderDescription(pid: number, owner: number, command: string): HolderDescription {
  const uid = getuid();
  return { host: hostname(), pid, owner, uid, user: userNames().get(uid) ?? String(uid), command: withoutPasswords(command) };
}

/** A lease as --exec holds it: described at acquire, released through the engine. */
export function leaseHolding(lease: Lease, grace: number): Holding {
  return {
    slot: lease.slot,
    fd: lease.socketFd,
    lease: { token: lease.token, lost: lease.lost, requested: lease.requested, grace },
    describe: () => {},
    release: () => lease.release(),
  };
}

/** `held by PID 12 on host-a (sleep 30)`: who holds NAME, asked within a second; "" when the engine cannot say. */
async function heldByRemote(backend: Backend, name: string): Promise<string> {
  try {
    const rows = (await backend.list({ name, timeout: 1 })).filter((h) => h.status === "active");
    return rows.length === 0 ? "" : `held by ${holdersOnHosts(rows)}`;
  } catch {
    return "";
  } finally {
    await backend.close();
  }
}

/** A BusyError or TimeoutError of NAME (`timeout` in seconds) made to name the holders, as on one machine; other errors as they are. */
export async function namingHolders(e: unknown, backend: Backend, name: string, timeout: number | null): Promise<unknown> {
  if (e instanceof BusyError) return new BusyError(name, await heldByRemote(backend, name));
  if (e instanceof TimeoutError && timeout !== null) return new TimeoutError(name, timeout, await heldByRemote(backend, name));
  return e;
}

/**
 * On a terminal (statusLineWanted), a second into a wait for NAME: one line saying where
 * and for whom it waits. Returns what ends it (call it once the wait is over).
 */
export function waitingNotice(backend: Backend, name: string): () => void {
  if (!statusLineWanted()) return () => {};
  let over = false;
  const timer = setTimeout(async () => {
    const who = await heldByRemote(backend, name);
    if (!over) notice(name, `waiting on ${backend.label}${who ? `; ${who}` : ""}`);
  }, WAITING_NOTICE_MS);
  return () => {
    over = true;
    clearTimeout(timer);
  };
}

/**
 * --check on an engine: 0 when a slot of NAME is free (for a `shared` request: also when
 * only readers hold it), 1 when all `slots` are held, 2 when
 * the engine cannot tell within `timeout` seconds (unreachable, hung: SPEC "Bounded network
 * waits"); usage errors stay 3.
 */
export async function checkRemote(backend: Backend, name: string, slots: number, shared: boolean, timeout = 1): Promise<number> {
  try {
    const free = await backend.check(name, slots, { timeout, shared });
    debug(`'${name}' has ${free} of ${slots} slot(s) free on ${backend.label}`);
    return free > 0 ? EXIT.OK : EXIT.BUSY;
  } catch (e) {
    if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE) throw new WaitlockError(EXIT.TIMEOUT, e.context, e.message);
    throw e;
  } finally {
    await backend.close();
  }
}

/** `PID 4242 on host-b (sleep 30)`, ... for --done's answers. */
const holdersOnHosts = (holders: RemoteHolder[]) =>
  holders.map((h) => `PID ${h.pid ?? h.backendPid}${h.host ? ` on ${h.host}` : ""}${h.command ? ` (${oneLine(h.command)})` : ""}`).join(", ");

/**
 * --done on an engine: asks every holder of NAME, on any host, to stop its work (one whose
 * owner is this process or its ancestor on this host: only to let go), and waits up to
 * `waitSeconds` for them to. Returns 0 (released) or 1 (nobody held it); throws
 * WaitlockError 2 naming the holders that still hold it, 75 when the engine cannot be reached.
 */
export async function doneRemote(backend: Backend, name: string, waitSeconds = DONE_WAIT_SECONDS): Promise<number> {
  try {
    const { asked, remaining } = await backend.done(name, { host: hostname(), ancestors: [...ancestorsOfSelf()], timeout: waitSeconds });
    if (asked.length === 0) {
      notice(name, "nobody holds this lock");
      return EXIT.BUSY;
    }
    if (remaining.length > 0) {
      const phrase = holdersOnHosts(remaining);
      throw new WaitlockError(EXIT.TIMEOUT, name, `${phrase} still ${remaining.length === 1 ? "holds" : "hold"} the lock ${secondsPhrase(waitSeconds)} after being asked to release`);
    }
    notice(name, `released by ${holdersOnHosts(asked)}`);
    return EXIT.OK;
  } finally {
    await backend.close();
  }
}

/** One --list row from the engine's. An undescribed lock in waitlock's key space shows as a corrupt record. */
function rowOf(h: RemoteHolder, where: string): Row {
  return {
    descriptor: h.name ?? "?",
    slot: h.slot ?? 0,
    status: h.status === "unknown" ? "corrupt" : h.status,
    file: where,
    mode: h.shared === null ? null : h.shared ? "shared" : "exclusive",
    pid: h.pid,
    owner: h.owner,
    uid: h.uid,
    user: h.user,
    acquired: h.acquired === null ? null : Math.floor(h.acquired),
    type: h.slots === null ? null : h.slots > 1 ? "semaphore" : "mutex",
    maxHolders: h.slots,
    hostname: h.host,
    command: h.command,
    format: null,
    token: h.token,
    ...(h.expiresIn === undefined ? {} : { expiresIn: h.expiresIn }),
  };
}

/** One --list waiter row from the engine's. */
function waiterRowOf(w: RemoteWaiter, where: string): WaiterRow {
  return {
    descriptor: w.name,
    status: "waiting",
    position: w.position,
    file: where,
    pid: w.pid,
    uid: w.uid,
    user: w.user,
    waitingSince: w.since,
    hostname: w.host,
    command: w.command,
    session: w.backendPid,
  };
}

/**
 * The engine as a source of listings for `opts`: the holders of every host (of NAME, or of
 * all names; stale and undescribed ones as `opts` asks, all for -f prometheus), sorted by
 * name and slot, and the waiters of every host in queue order (none with --stale-only).
 * Throws what Backend.list and Backend.waiters throw.
 */
export function remoteListing(backend: Backend, opts: ListOptions): ListingSource {
  return async () => {
    const everything = opts.format === "prometheus";
    const holders = (await backend.list({ name: opts.name, all: everything || opts.all || opts.staleOnly }))
      .map((h) => rowOf(h, backend.url))
      .filter((r) => everything || !opts.staleOnly || r.status !== "active")
      .sort((a, b) => (a.descriptor < b.descriptor ? -1 : a.descriptor > b.descriptor ? 1 : a.slot - b.slot));
    const waiters = opts.staleOnly ? [] : (await backend.waiters({ name: opts.name })).map((w) => waiterRowOf(w, backend.url));
    return { listing: { holders, waiters, network: true }, where: ` on ${backend.label}`, location: backend.url };
  };
}

/**
 * --list on an engine: the holders and waiters of every host, in the format `opts` asks
 * for, on stdout or into `opts.output`; with `watch` (seconds), again every `watch` seconds
 * as --watch does. Throws WaitlockError 1 (usage errors stay 3).
 */
export async function listRemote(backend: Backend, opts: ListOptions, watch?: number): Promise<number> {
  try {
    const source = remoteListing(backend, opts);
    if (watch !== undefined) return await (await import("./watch")).watchLocks(source, opts, watch);
    return await listLocks(source, opts);
  } finally {
    await backend.close();
  }
}
