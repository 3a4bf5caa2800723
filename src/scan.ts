// The locks in a lock directory and who holds each, as the kernel says (for --list and
// --done; not on the lock path): the slot files of NAMEs, and the files locked with --file
// or --fd, known there by their holder files (holderfiles.ts).
import { close, fstat } from "../ffi/libc";
import { inspect, releasedSince } from "./engine";
import { EXIT, WaitlockError } from "./errors";
import { openFileToLock } from "./filelock";
import { fileBaseName, identityInBase, parseHolderFile, readHolderFiles } from "./holderfiles";
import { decodeFrom } from "./holderrecord";
import { ProcessCache, fileKey, findHolders, grantedLocks, readLockTable, type Granted, type LockMode, type LockTable } from "./holders";
import { debug } from "./log";
import { alive, parentOf } from "./procinfo";
import { inspectRecord, type Decoded, type LockRecord } from "./record";
import { runtimeError, sysError } from "./syserror";
import { queueBaseOf } from "./queue";

const SLOT_FILE = /^([A-Za-z0-9._-]+)\.slot(\d+)\.lock$/;
const SLOT_BASE = /^([A-Za-z0-9._-]+)\.slot(\d+)$/;

export interface SlotFile {
  /** the NAME; for a file lock the file's path (as its records name it) */
  name: string;
  /** 0-based slot number (0 for a file) */
  slot: number;
  /** the slot file; for a file lock the file's path */
  path: string;
}

/** What to look at: every lock, one NAME's slots, or one file (--file) and nothing else. */
export type Selection = { name?: string } | { file: string };

/** A record in a holder file: a shared holder of a slot, or a holder of a file lock. */
export interface HolderFileView {
  path: string;
  bytes: Uint8Array;
  decoded: Decoded;
  record: LockRecord | null;
  /** the process it names (the same one: PID and start time) holds the lock */
  holds: boolean;
}

export interface SlotView {
  /** a NAME's slot file, or a file locked with --file or --fd */
  kind: "slot" | "file";
  file: SlotFile;
  held: boolean;
  /** how it is held, where that can be told */
  mode: LockMode | null;
  dev: number;
  ino: number;
  /** the slot file's own bytes (its exclusive holder's record) and what they decode to; empty for a file */
  bytes: Uint8Array;
  decoded: Decoded;
  record: LockRecord | null;
  /** the records of its shared holders (a slot) or of all its holders (a file) */
  holderFiles: HolderFileView[];
  /**
   * The processes that hold it now (empty when free): those its records name, then those the
   * kernel names that no record accounts for. Where the kernel cannot say, the records'
   * holders if they are still running.
   */
  holders: number[];
  /** the slot file's record names a holder */
  recordHolds: boolean;
  /**
   * The holders the kernel names that no record accounts for, without the processes that
   * hold through another holder's descriptor (its descendants): one row each for --list.
   */
  unrecorded: number[];
}

const bySlot = (a: SlotFile, b: SlotFile) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.slot - b.slot);

/** The entries of `dir`; [] when it is missing. */
function readDir(dir: string): string[] {
  const { readdirSync } = require("node:fs") as typeof import("node:fs");
  try {
    return readdirSync(dir);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return [];
    const doing = "cannot read lock directory";
    throw runtimeError(dir, e, doing) ?? new WaitlockError(EXIT.SYSTEM, dir, `${doing}: ${(e as Error).message}`);
  }
}

/** The holder files in `dir`, by the base name they belong to. */
function holderFilesIn(entries: string[]): Map<string, string[]> {
  const byBase = new Map<string, string[]>();
  for (const entry of entries) {
    const h = parseHolderFile(entry);
    if (!h) continue;
    const list = byBase.get(h.baseName) ?? [];
    list.push(entry);
    byBase.set(h.baseName, list);
  }
  return byBase;
}

/** The record in a slot's file or holder file, trusted only whole and describing this very lock. */
export function slotRecord(file: SlotFile, bytes: Uint8Array, kind: SlotView["kind"] = "slot"): Decoded {
  const d = inspectRecord(bytes);
  if (!("record" in d)) return d;
  if (kind === "file") return d.record.descriptor.startsWith("/") ? d : { corrupt: `record describes '${d.record.descriptor}', not a file` };
  if (d.record.descriptor !== file.name || d.record.slot !== file.slot) return { corrupt: `record describes '${d.record.descriptor}' slot ${d.record.slot}` };
  return d;
}

/** The holder files `entries` of `dir` that can be read, sorted, each trusted as slotRecord() says. */
function holderFileViews(dir: string, entries: string[], file: SlotFile, kind: SlotView["kind"]): HolderFileView[] {
  return readHolderFiles(
    entries.sort().map((entry) => `${dir}/${entry}`),
    (bytes) => slotRecord(file, bytes, kind),
  ).map(({ path, bytes, decoded }) => ({ path, bytes, decoded, record: "record" in decoded ? decoded.record : null, holds: false }));
}

/**
 * Does the process a record names hold the lock on `dev`/`ino` now (unknown counts, if it
 * runs)? `processes` looks at each process once, however many locks it holds.
 */
const recordHolds = (record: LockRecord, dev: number, ino: number, processes: ProcessCache) =>
  processes.runningSince(record.pid, record.acquiredAt) && processes.holdsLock(record.pid, dev, ino) !== false;

function blankView(kind: SlotView["kind"], file: SlotFile, dev: number, ino: number): SlotView {
  return { kind, file, held: false, mode: null, dev, ino, bytes: new Uint8Array(0), decoded: { corrupt: "empty" }, record: null, holderFiles: [], holders: [], recordHolds: false, unrecorded: [] };
}

/** The view of a file lock: its identity, its holder files, and how the kernel holds it. */
function fileView(dev: number, ino: number, path: string | undefined, holderFiles: HolderFileView[], locks: Map<string, Granted> | undefined, processes: ProcessCache): SlotView {
  const named = path ?? holderFiles.find((h) => h.record)?.record?.descriptor ?? fileBaseName(dev, ino);
  const view = blankView("file", { name: named, slot: 0, path: named }, dev, ino);
  view.holderFiles = holderFiles;
  const granted = locks?.get(fileKey(dev, ino));
  view.mode = granted?.mode ?? null;
  for (const h of holderFiles) h.holds = !!h.record && recordHolds(h.record, dev, ino, processes);
  view.held = locks ? !!granted : holderFiles.some((h) => h.holds);
  return view;
}

/** The identity of the existing file `path` (--file), opened but not locked. */
function identityOfPath(path: string): { dev: number; ino: number } {
  const fd = openFileToLock(path);
  try {
    const st = fstat(fd);
    if (typeof st === "number") throw sysError(path, st, "cannot stat");
    return { dev: st.dev, ino: st.ino };
  } finally {
    close(fd);
  }
}

/**
 * Every lock of `dir` that `select` picks, with its state and holders. A record whose
 * holder (the same process that took the lock) holds it still answers for it; for the rest
 * the kernel is asked who holds the file: every holder when no record answers, and those no
 * record accounts for when the kernel counts more holders than the records name.
 */
export async function viewSlots(dir: string | undefined, select: Selection = {}, table: LockTable | undefined = readLockTable()): Promise<SlotView[]> {
  const locks = table?.granted;
  const processes = new ProcessCache();
  const entries = dir === undefined ? [] : readDir(dir);
  const holderFiles = holderFilesIn(entries);
  const views: SlotView[] = [];
  const onlyFile = "file" in select ? identityOfPath(select.file) : undefined;
  const filePath = "file" in select ? (require("node:path") as typeof import("node:path")).resolve(select.file) : undefined;
  const onlyName = "name" in select ? select.name : undefined;

  if (!onlyFile) {
    const files: SlotFile[] = [];
    const seen = new Set<string>();
    for (const entry of entries) {
      const m = SLOT_FILE.exec(entry);
      if (!m || (onlyName !== undefined && m[1] !== onlyName)) continue;
      files.push({ name: m[1]!, slot: Number(m[2]), path: `${dir}/${entry}` });
      seen.add(`${m[1]}.slot${m[2]}`);
    }
    // Holder files whose slot file is gone: their readers were killed and the slot was
    // released since; stale.
    for (const base of holderFiles.keys()) {
      const m = SLOT_BASE.exec(base);
      if (m && !seen.has(base) && (onlyName === undefined || m[1] === onlyName)) files.push({ name: m[1]!, slot: Number(m[2]), path: `${dir}/${base}.lock` });
    }
    for (const file of files.sort(bySlot)) {
      const view = slotView(dir!, file, holderFiles.get(`${file.name}.slot${file.slot}`) ?? [], locks, processes);
      if (view) views.push(view);
    }
  }
  // A NAME picks no file locks; a file picks its own (whatever path its holders used).
  if (onlyName === undefined) {
    // Files are known by their holders' records, and by the queues of waitlocks waiting for
    // them: a file that a program keeping no record holds (flock(1)) has no holder files.
    const bases = new Set(holderFiles.keys());
    for (const entry of entries) {
      const base = queueBaseOf(entry);
      if (base?.startsWith("file@")) bases.add(base);
    }
    for (const base of bases) {
      const id = identityInBase(base);
      if (!id || (onlyFile && (id.dev !== onlyFile.dev || id.ino !== onlyFile.ino))) continue;
      const list = holderFiles.get(base) ?? [];
      views.push(fileView(id.dev, id.ino, filePath, holderFileViews(dir!, list, { name: base, slot: 0, path: base }, "file"), locks, processes));
    }
  }
  // Asked about a file, show its holders even when no waitlock recorded any (flock(1) users).
  if (onlyFile && views.length === 0) views.push(fileView(onlyFile.dev, onlyFile.ino, filePath, [], locks, processes));
  askKernel(views, locks);
  return views;
}

/** The view of one slot: its file's state and record, and its readers' holder files. */
function slotView(dir: string, file: SlotFile, holderEntries: string[], locks: Map<string, Granted> | undefined, processes: ProcessCache): SlotView | undefined {
  let seen;
  try {
    seen = inspect(file.path, true, locks);
  } catch (e) {
    // One unreadable file (a directory, another user's) must not hide the others.
    debug(`${file.path}: ${(e as Error).message}`);
    return undefined;
  }
  const readers = holderFileViews(dir, holderEntries, file, "slot");
  if (seen.state === "absent") {
    if (readers.length === 0) return undefined;
    const view = blankView("slot", file, 0, 0);
    view.holderFiles = readers;
    return view;
  }
  const view = blankView("slot", file, seen.dev!, seen.ino!);
  view.bytes = seen.bytes!;
  view.decoded = decodeFrom(file.path, view.bytes, (bytes) => slotRecord(file, bytes));
  view.record = "record" in view.decoded ? view.decoded.record : null;
  view.holderFiles = readers;
  for (const h of readers) h.holds = !!h.record && recordHolds(h.record, view.dev, view.ino, processes);
  view.mode = seen.mode ?? null;
  // Where the kernel lists no locks a failed shared try shows only a writer: readers whose
  // records name running holders count.
  view.held = seen.state === "held" || (!locks && readers.some((h) => h.holds));
  if (view.held && !seen.mode) view.mode = "shared";
  // The slot file's record is its writer's: it cannot answer while readers hold the slot.
  view.recordHolds = view.held && view.mode !== "shared" && !!view.record && recordHolds(view.record, view.dev, view.ino, processes);
  return view;
}

/** Fills in `holders` and `unrecorded` of the held views, asking the kernel where records do not answer. */
function askKernel(views: SlotView[], locks: Map<string, Granted> | undefined): void {
  const ask = new Map<string, SlotView>();
  for (const view of views) {
    if (!view.held) continue;
    const recorded: number[] = [];
    if (view.recordHolds) recorded.push(view.record!.pid);
    for (const h of view.holderFiles) if (h.holds) recorded.push(h.record!.pid);
    view.holders = recorded;
    const count = locks?.get(fileKey(view.dev, view.ino))?.count ?? 0;
    if (recorded.length === 0 || count > recorded.length) ask.set(fileKey(view.dev, view.ino), view);
  }
  if (ask.size === 0) return;
  const found = findHolders(new Set(ask.keys()));
  for (const [key, view] of ask) {
    // The command of a recorded holder is reached through it (a waitlock forwards signals).
    const recorded = new Set(view.holders);
    const others: number[] = [];
    for (const h of found?.get(key) ?? []) if (!recorded.has(h.pid) && !descendsFrom(h.pid, recorded)) others.push(h.pid);
    view.holders = [...view.holders, ...others];
    // For --list, a process that inherited the descriptor of another holder (the command
    // of a flock(1)) holds through that holder's lock: one row, the holder's.
    const holding = new Set(view.holders);
    view.unrecorded = others.filter((pid) => !descendsFrom(pid, holding));
  }
}

/** Is `pid` a descendant of one of `ancestors`? */
function descendsFrom(pid: number, ancestors: ReadonlySet<number>): boolean {
  if (ancestors.size === 0) return false;
  for (let p = parentOf(pid), steps = 0; p !== undefined && p > 1 && steps < 64; p = parentOf(p), steps++) if (ancestors.has(p)) return true;
  return false;
}

/** Has the lock of `view` been let go since it was seen (gone, replaced or unlocked)? */
export function releasedSinceSeen(view: SlotView): boolean {
  if (view.kind === "slot") return releasedSince(view.file.path, view.ino);
  const locks = grantedLocks();
  if (locks) return !locks.has(fileKey(view.dev, view.ino));
  // Without the kernel's list, a file is not opened to look: its holders have all gone.
  for (const pid of view.holders) if (alive(pid)) return false;
  return true;
}
