// The modes on a network engine (--backend): --exec's lease, --check, --done and --list.
// They see only the seam (src/backend.ts); the CLI hands them the engine.
import { getuid, hostname } from "../../ffi/libc";
import type { Backend, HolderDescription, Lease, RemoteHolder } from "../backend";
import { writeAtomically } from "../atomicfile";
import { EXIT, WaitlockError, secondsPhrase } from "../errors";
import { formatRows, type Listing, type Row } from "../format";
import { holdersPhrase } from "../holdertext";
import { debug, notice } from "../log";
import { ancestorsOfSelf } from "../procinfo";
import type { Holding } from "./exec";
import { asListError, nothingListed, restoreJit, toStdout, userNames, type ListOptions } from "./list";

const DONE_WAIT_SECONDS = 5;

/** How the engine's --list names a holder: this host, process `pid` holding for `owner`, running `command`. */
export async function holderDescription(pid: number, owner: number, command: string): Promise<HolderDescription> {
  const uid = getuid();
  return { host: hostname(), pid, owner, uid, user: (await userNames()).get(uid) ?? String(uid), command };
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

/**
 * --check on an engine: 0 when a slot of NAME is free, 1 when all `slots` are held, 2 when
 * the engine cannot tell within `timeout` seconds (unreachable, hung: SPEC "Bounded network
 * waits"); usage errors stay 3.
 */
export async function checkRemote(backend: Backend, name: string, slots: number, timeout = 1): Promise<number> {
  try {
    const free = await backend.check(name, slots, { timeout });
    debug(`'${name}' has ${free} of ${slots} slot(s) free on ${backend.label}`);
    return free > 0 ? EXIT.OK : EXIT.BUSY;
  } catch (e) {
    if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE) throw new WaitlockError(EXIT.TIMEOUT, e.context, e.message);
    throw e;
  } finally {
    await backend.close();
  }
}

const named = (h: RemoteHolder) => ({ pid: h.pid ?? h.backendPid, command: `${h.command ?? "?"}${h.host ? ` on ${h.host}` : ""}` });

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
      const phrase = holdersPhrase(remaining.map(named));
      throw new WaitlockError(EXIT.TIMEOUT, name, `${phrase} still ${remaining.length === 1 ? "holds" : "hold"} the lock ${secondsPhrase(waitSeconds)} after being asked to release`);
    }
    notice(name, `released by ${holdersPhrase(asked.map(named))}`);
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

/**
 * --list on an engine: the holders of every host (of NAME, or of all names), in the format
 * `opts` asks for, on stdout or into `opts.output`. Waiters are not listed (the engine's
 * queue has no description of them). Throws WaitlockError 1 (usage errors stay 3).
 */
export async function listRemote(backend: Backend, opts: ListOptions): Promise<number> {
  restoreJit();
  try {
    const everything = opts.format === "prometheus";
    const rows = (await backend.list({ name: opts.name, all: everything || opts.all || opts.staleOnly }))
      .map((h) => rowOf(h, backend.url))
      .filter((r) => everything || !opts.staleOnly || r.status !== "active");
    const listing: Listing = { holders: rows, waiters: [] };
    const now = Date.now() / 1000;
    let text: string;
    if (opts.format === "prometheus") text = (await import("../prometheus")).prometheusText(listing, now, backend.url);
    else if (opts.format === "human" && rows.length === 0) text = `${nothingListed(opts)} on ${backend.url}\n`;
    else text = formatRows(rows, opts.format, opts.all || opts.staleOnly);
    if (opts.output !== undefined) writeAtomically(opts.output, text);
    else await toStdout(text);
    return EXIT.OK;
  } catch (e) {
    throw asListError(e);
  } finally {
    await backend.close();
  }
}
