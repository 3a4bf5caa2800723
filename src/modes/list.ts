// waitlock --list: who holds what, and who waits for it.
import { writeAtomically } from "../atomicfile";
import { EXIT, WaitlockError } from "../errors";
import { formatRows, type Listing, type Row, type Status, type WaiterRow } from "../format";
import { ProcessCache, readLockTable } from "../holders";
import type { Format } from "../options";
import { commandLine, processUid } from "../procinfo";
import { ownerOfHolder } from "./holder";
import { viewQueues, type QueueView } from "./queue";
import { viewSlots, type SlotView } from "./scan";

export interface ListOptions {
  format: Format;
  all: boolean;
  staleOnly: boolean;
  name?: string;
  /** -o: replace this file with the listing instead of writing to stdout */
  output?: string;
}

/**
 * A fingerprint of the stored record for audit trails. Loaded with require(), so that only
 * `-f json` evaluates it: the CommonJS wrapper runs on first call.
 */
async function sha256(bytes: Uint8Array): Promise<string> {
  // The per-algorithm build: the full index bundles every algorithm's WebAssembly (284 KB of
  // source that the compiled binary carries and pages in at every start).
  const { sha256: hash } = require("hash-wasm/dist/sha256.umd.min.js") as typeof import("hash-wasm");
  return hash(bytes);
}

/** User names by UID, from /etc/passwd. */
export async function userNames(): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  try {
    const { readFileSync } = require("node:fs") as typeof import("node:fs");
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [user, , uid] = line.split(":");
      if (user && uid && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), user);
    }
  } catch {
    // No passwd file: users are shown by number.
  }
  return names;
}

/** What an empty human listing says instead of a bare header (followed by " in DIR"). */
export function nothingListed(opts: ListOptions): string {
  const of = opts.name === undefined ? "" : ` of '${opts.name}'`;
  if (opts.staleOnly) return `no stale or corrupt records${of}`;
  if (opts.all) return `no locks or records${of}`;
  return opts.name === undefined ? "no locks held" : `'${opts.name}' is not held`;
}

/** The row of one process holding (or having held) a slot. */
function rowOf(view: SlotView, status: Status, users: Map<number, string>, pid: number | null, fromKernel: boolean): Row {
  const { file, record } = view;
  const uid = fromKernel && pid !== null ? (processUid(pid) ?? null) : (record?.uid ?? null);
  // A holder process found without a record: it holds the slot for the owner it was started for.
  const owner = record?.owner ?? (fromKernel && pid !== null ? ownerOfHolder(pid) : undefined) ?? null;
  return {
    descriptor: file.name,
    slot: file.slot,
    status,
    file: file.path,
    pid,
    owner,
    uid,
    user: uid === null ? null : (users.get(uid) ?? String(uid)),
    acquired: record?.acquiredAt ?? null,
    type: record?.type ?? null,
    maxHolders: record?.maxHolders ?? null,
    hostname: record?.hostname ?? null,
    command: fromKernel && pid !== null ? commandLine(record || owner === null ? pid : owner) : (record?.command ?? null),
    format: "format" in view.decoded ? view.decoded.format : null,
  };
}

/**
 * The rows of one slot: a held slot shows who holds it now (the record's holder, or the
 * processes the kernel names when that one is gone); a free one its stale or corrupt record.
 */
function rowsOf(view: SlotView, users: Map<number, string>): Row[] {
  if (!view.held) return [rowOf(view, view.record ? "stale" : "corrupt", users, view.record?.pid ?? null, false)];
  if (view.recordHolds || view.holders.length === 0) return [rowOf(view, "active", users, view.record?.pid ?? null, false)];
  return view.holders.map((pid) => rowOf(view, "active", users, pid, true));
}

/** The rows of one NAME's queue: its waiters in order, position 1 first. */
function waiterRows(queue: QueueView, users: Map<number, string>, processes: ProcessCache, hostname: string): WaiterRow[] {
  return queue.waiters.map((pid, i) => {
    const uid = pid === null ? null : (processUid(pid) ?? null);
    return {
      descriptor: queue.name,
      status: "waiting",
      position: i + 1,
      file: queue.path,
      pid,
      uid,
      user: uid === null ? null : (users.get(uid) ?? String(uid)),
      waitingSince: pid === null ? null : (processes.startedAt(pid) ?? null),
      hostname: pid === null ? null : hostname,
      command: pid === null ? null : commandLine(pid),
    };
  });
}

/**
 * What `dir` holds now (undefined: no directory, nothing), as --list shows it: the holders
 * and records that `opts` asks for (all of them for -f prometheus), and the waiters (none
 * with --stale-only). Slots and queues are seen through the same look at /proc/locks
 * (readLockTable()). Throws WaitlockError (4; 5 when permission is denied) when `dir`
 * cannot be read.
 */
export async function snapshot(dir: string | undefined, opts: ListOptions, users: Map<number, string>): Promise<Listing> {
  const listing: Listing = { holders: [], waiters: [] };
  if (dir === undefined) return listing;
  const table = readLockTable();
  const everything = opts.format === "prometheus";
  for (const view of await viewSlots(dir, opts.name, table)) {
    for (const row of rowsOf(view, users)) {
      const show = everything || (opts.staleOnly ? row.status !== "active" : opts.all || row.status === "active");
      if (!show) continue;
      if (opts.format === "json") row.sha256 = await sha256(view.bytes);
      listing.holders.push(row);
    }
  }
  if (opts.staleOnly) return listing;
  const processes = new ProcessCache();
  const { hostname } = require("node:os") as typeof import("node:os");
  for (const queue of viewQueues(dir, opts.name, table)) listing.waiters.push(...waiterRows(queue, users, processes, hostname()));
  return listing;
}

/** The listing as `opts.format` writes it, ages measured up to `now` (Unix seconds). */
export async function listingText(dir: string | undefined, listing: Listing, opts: ListOptions, now: number): Promise<string> {
  if (opts.format === "prometheus") return (await import("../prometheus")).prometheusText(listing, now, dir);
  // A person reading an empty table should not have to guess: the machine formats stay bare.
  if (opts.format === "human" && listing.holders.length === 0 && listing.waiters.length === 0) return `${nothingListed(opts)}${whereText(dir)}\n`;
  return formatRows(listing.holders, opts.format, opts.all || opts.staleOnly, listing.waiters);
}

/** " in DIR", or why there is no directory to look in. */
export const whereText = (dir: string | undefined) => (dir === undefined ? " (the lock directory does not exist)" : ` in ${dir}`);

/**
 * Gives the JIT compiler back its normal policy. The executable starts with it held back
 * (package.json: --compile-jit-policy), as compiling run-once code costs more than it
 * saves; a listing of many slots, or one listing after another, is real work.
 */
export function restoreJit(): void {
  Bun.unsafe.setJITPolicy(1);
}

/** --list's errors are exit 1 (usage errors stay 3). */
export function asListError(e: unknown): unknown {
  return e instanceof WaitlockError && e.exitCode !== EXIT.USAGE ? new WaitlockError(EXIT.BUSY, e.context, e.message) : e;
}

/**
 * Writes `text` to stdout; false when nobody reads it any more (EPIPE: `waitlock --list |
 * head` is done), which ends a listing quietly, as SIGPIPE would.
 */
export async function toStdout(text: string): Promise<boolean> {
  try {
    await Bun.write(Bun.stdout, text);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === "EPIPE") return false;
    throw e;
  }
}

/**
 * Lists the locks of `lockDir()` once, on stdout or into `opts.output`. `lockDir` is
 * resolved inside, so that a directory problem is also exit 1; throws WaitlockError with
 * exit 1 for every failure but a usage error (3).
 */
export async function listLocks(lockDir: () => string | undefined, opts: ListOptions): Promise<number> {
  restoreJit();
  try {
    const dir = lockDir();
    const text = await listingText(dir, await snapshot(dir, opts, await userNames()), opts, Date.now() / 1000);
    if (opts.output !== undefined) writeAtomically(opts.output, text);
    else await toStdout(text);
    return EXIT.OK;
  } catch (e) {
    throw asListError(e);
  }
}
