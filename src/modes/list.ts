// waitlock --list: who holds what, and who waits for it.
import { writeAtomically } from "../atomicfile";
import { EXIT } from "../errors";
import { byName, formatRows, type Listing, type Row, type Status, type WaiterRow } from "../format";
import { fileBaseName } from "../holderfiles";
import { pathOpenBy, readLockTable, type LockMode } from "../holders";
import type { Decoded, LockRecord } from "../record";
import type { Format } from "../options";
import { commandLine, processUid } from "../procinfo";
import { userNames } from "../users";
import { ownerOfHolder } from "./owner";
import { viewQueues, type QueueView } from "../queue";
import { viewSlots, type SlotView } from "../scan";

export interface ListOptions {
  format: Format;
  all: boolean;
  staleOnly: boolean;
  name?: string;
  /** --file PATH: that file's lock instead of a NAME's */
  file?: string;
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

/** What an empty human listing says instead of a bare header (followed by " in DIR"). */
export function nothingListed(opts: ListOptions): string {
  const of = opts.file !== undefined ? ` of ${opts.file}` : opts.name === undefined ? "" : ` of '${opts.name}'`;
  if (opts.staleOnly) return `no stale or corrupt records${of}`;
  if (opts.all) return `no locks or records${of}`;
  if (opts.file !== undefined) return `${opts.file} is not held`;
  return opts.name === undefined ? "no locks held" : `'${opts.name}' is not held`;
}

/** Where a row's description comes from: a slot file's own record, a holder file, or none. */
interface Source {
  record: LockRecord | null;
  decoded: Decoded;
  bytes: Uint8Array;
}

const NO_RECORD: Source = { record: null, decoded: { corrupt: "none" }, bytes: new Uint8Array(0) };

/** The row of one process holding (or having held) a lock, described by `source`. */
function rowOf(view: SlotView, source: Source, mode: LockMode | null, status: Status, users: Map<number, string>, pid: number | null, fromKernel: boolean): Row {
  const { file } = view;
  const { record } = source;
  const uid = fromKernel && pid !== null ? (processUid(pid) ?? null) : (record?.uid ?? null);
  // A holder process found without a record: it holds the slot for the owner it was started for.
  const owner = record?.owner ?? (fromKernel && pid !== null ? ownerOfHolder(pid) : undefined) ?? null;
  return {
    descriptor: file.name,
    slot: file.slot,
    status,
    file: file.path,
    mode,
    pid,
    owner,
    uid,
    user: uid === null ? null : (users.get(uid) ?? String(uid)),
    // Only a record says when a lock was taken: the kernel keeps no time (a holder's start is not it).
    acquired: record?.acquiredAt ?? null,
    type: record?.type ?? null,
    // A file is one lock, whoever holds it: slot 0 of 1.
    maxHolders: record?.maxHolders ?? (view.kind === "file" ? 1 : null),
    hostname: record?.hostname ?? null,
    command: fromKernel && pid !== null ? commandLine(record || owner === null ? pid : owner) : (record?.command ?? null),
    format: "format" in source.decoded ? source.decoded.format : null,
  };
}

/**
 * The rows of one lock, each with the bytes it was read from. A held lock shows who holds
 * it now: the holders its records name, and the processes the kernel names that no record
 * accounts for (all of them when no record answers: its holder is gone, or wrote none);
 * then (for --all) the stale records of readers that were killed. A free one shows its
 * stale or corrupt records.
 */
function rowsOf(view: SlotView, users: Map<number, string>): { row: Row; bytes: Uint8Array }[] {
  const own: Source = { record: view.record, decoded: view.decoded, bytes: view.bytes };
  // A slot's readers are shared holders; a file's holders share the kernel's one mode.
  const fileMode = view.kind === "slot" ? "shared" : null;
  const rows: { row: Row; bytes: Uint8Array }[] = [];
  const add = (source: Source, mode: LockMode | null, status: Status, pid: number | null, fromKernel = false) =>
    rows.push({ row: rowOf(view, source, mode, status, users, pid, fromKernel), bytes: source.bytes });
  const stale = (source: Source, mode: LockMode | null) => add(source, mode, source.record ? "stale" : "corrupt", source.record?.pid ?? null);
  if (!view.held) {
    if (view.kind === "slot" && (view.bytes.byteLength > 0 || view.holderFiles.length === 0)) stale(own, "exclusive");
    for (const h of view.holderFiles) stale(h, fileMode);
    return rows;
  }
  if (view.recordHolds) add(own, view.mode ?? "exclusive", "active", view.record!.pid);
  for (const h of view.holderFiles) if (h.holds) add(h, view.mode ?? fileMode, "active", h.record!.pid);
  const answered = rows.length > 0;
  // With no record answering, the slot file's own (stale) record still names the owner a
  // killed waitlock --exec held the slot for.
  for (const pid of view.unrecorded) add(answered || view.kind === "file" ? NO_RECORD : own, view.mode, "active", pid, true);
  if (rows.length === 0) add(view.kind === "slot" ? own : NO_RECORD, view.mode, "active", view.kind === "slot" ? (view.record?.pid ?? null) : null);
  for (const h of view.holderFiles) if (!h.holds) stale(h, fileMode);
  return rows;
}

/** The rows of one lock's queue, shown as `descriptor`: its waiters in order, position 1 first. */
function waiterRows(queue: QueueView, descriptor: string, users: Map<number, string>, hostname: string): WaiterRow[] {
  return queue.waiters.map(({ pid, path, since }, i) => {
    const uid = pid === null ? null : (processUid(pid) ?? null);
    return {
      descriptor,
      status: "waiting",
      position: i + 1,
      file: path,
      pid,
      uid,
      user: uid === null ? null : (users.get(uid) ?? String(uid)),
      waitingSince: since,
      hostname: pid === null ? null : hostname,
      command: pid === null ? null : commandLine(pid),
    };
  });
}

/**
 * The rows `--list -f json` shows for `opts` in the lock directory `dir` (undefined: it does
 * not exist), holders and waiters, for the coprocess's list request. Throws as snapshot().
 */
export async function listRows(dir: string | undefined, opts: ListOptions): Promise<(Row | WaiterRow)[]> {
  return byName(await snapshot(dir, opts, userNames()));
}

/**
 * Gives each file lock that no record names (its holders keep none, as flock(1), or have
 * none yet) the path by which one of its holders or waiters has it open, where /proc shows
 * it; else it stays "file@DEV-INO". Returns what each file's queue is shown as, by base.
 */
function nameFiles(views: SlotView[], queues: QueueView[]): Map<string, string> {
  const waitersOf = new Map(queues.map((q) => [q.name, q.waiters]));
  const names = new Map<string, string>();
  for (const view of views) {
    if (view.kind !== "file") continue;
    const base = fileBaseName(view.dev, view.ino);
    if (view.file.name === base) {
      for (const pid of [...view.holders, ...(waitersOf.get(base) ?? []).map((w) => w.pid)]) {
        const path = pid === null ? undefined : pathOpenBy(pid, view.dev, view.ino);
        if (path === undefined) continue;
        view.file = { name: path, slot: 0, path };
        break;
      }
    }
    names.set(base, view.file.name);
  }
  return names;
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
  const select = opts.file !== undefined ? { file: opts.file } : { name: opts.name };
  const views = await viewSlots(dir, select, table);
  // --file PATH: its view comes first (viewSlots() always has one), and its queue is its identity's.
  const onlyBase = opts.file !== undefined ? fileBaseName(views[0]!.dev, views[0]!.ino) : opts.name;
  const queues = opts.staleOnly ? [] : viewQueues(dir, onlyBase, table);
  const names = nameFiles(views, queues);
  for (const view of views) {
    for (const { row, bytes } of rowsOf(view, users)) {
      const show = everything || (opts.staleOnly ? row.status !== "active" : opts.all || row.status === "active");
      if (!show) continue;
      // No record stored (a flock(1) holder, say): nothing to fingerprint.
      if (opts.format === "json") row.sha256 = bytes.byteLength === 0 ? null : await sha256(bytes);
      listing.holders.push(row);
    }
  }
  const { hostname } = require("node:os") as typeof import("node:os");
  for (const queue of queues) listing.waiters.push(...waiterRows(queue, names.get(queue.name) ?? queue.name, users, hostname()));
  return listing;
}

/** One look at the locks, wherever they live: what --list and each --watch view show. */
export interface ListingLook {
  listing: Listing;
  /** where the locks were looked for, for the human view: " in DIR", " on HOST:PORT" */
  where: string;
  /** -f prometheus's location label: the lock directory or the engine's URL (undefined: none) */
  location: string | undefined;
}

/** Takes a fresh look each time it is called (the lock directory may come and go, holders change). */
export type ListingSource = () => Promise<ListingLook>;

/** The lock directory `lockDir()` (asked anew each time) as a source of listings for `opts`. Throws as snapshot(). */
export function localListing(lockDir: () => string | undefined, opts: ListOptions): ListingSource {
  const users = userNames();
  return async () => {
    const dir = lockDir();
    // A file named by --file is where it is: the lock directory has no part in it.
    return { listing: await snapshot(dir, opts, users), where: opts.file === undefined ? whereText(dir) : "", location: dir };
  };
}

/** The look as `opts.format` writes it, ages measured up to `now` (Unix seconds). */
export async function listingText({ listing, where, location }: ListingLook, opts: ListOptions, now: number): Promise<string> {
  if (opts.format === "prometheus") return (await import("../prometheus")).prometheusText(listing, now, location);
  // A person reading an empty table should not have to guess: the machine formats stay bare.
  if (opts.format === "human" && listing.holders.length === 0 && listing.waiters.length === 0) return `${nothingListed(opts)}${where}\n`;
  return formatRows(listing.holders, opts.format, opts.all || opts.staleOnly, listing.waiters, listing.network);
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
 * Lists the locks of `source` once, on stdout or into `opts.output`. Returns 0; throws what
 * the source and writing throw (the CLI makes every failure of --list exit 1: errors.ts
 * unansweredStatus).
 */
export async function listLocks(source: ListingSource, opts: ListOptions): Promise<number> {
  restoreJit();
  const text = await listingText(await source(), opts, Date.now() / 1000);
  if (opts.output !== undefined) writeAtomically(opts.output, text);
  else await toStdout(text);
  return EXIT.OK;
}
