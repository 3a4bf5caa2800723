// Who holds a lock, as the kernel says (invariant 1). A record names the process that took
// a slot, but that process may be gone while a descendant that inherited the locked open
// file description still holds it, and a recorded PID may since have been reused. On
// Linux the kernel shows each granted flock(2) lock in /proc/locks, and in
// /proc/PID/fdinfo/FD of every process that shares the locked open file description
// (proc(5), "/proc/pid/fdinfo"); in a PID namespace other than the initial one /proc/locks
// leaves some out, which the descriptors then tell. Elsewhere these answer `undefined`: the
// callers then fall back on the record, checked with kill(pid, 0).
import { E, clockTicksPerSecond, kill, platform } from "../ffi/libc";

type Fs = typeof import("node:fs");
const fs = (): Fs => require("node:fs") as Fs;

/** How a flock(2) lock is held: LOCK_EX (one holder) or LOCK_SH (any number of them). */
export type LockMode = "exclusive" | "shared";

export interface LockHolder {
  pid: number;
  mode: LockMode;
}

/** A file as /proc/locks names it: "MAJOR:MINOR:INODE", major and minor in hex. */
export function fileKey(dev: number, ino: number): string {
  // st_dev as the kernel encodes it for stat(2) (new_encode_dev): minor's low 8 bits, then
  // 12 bits of major, then the rest of minor.
  const major = Math.floor(dev / 256) % 4096;
  const minor = (dev % 256) + Math.floor(dev / 4096) - (Math.floor(dev / 4096) % 256);
  return `${major.toString(16)}:${minor.toString(16)}:${ino}`;
}

/** "fe:00:2146340" as printed by the kernel, in the form fileKey() makes. */
function normalKey(printed: string): string {
  const [major = "", minor = "", ino = ""] = printed.split(":");
  return `${parseInt(major, 16).toString(16)}:${parseInt(minor, 16).toString(16)}:${ino}`;
}

/** A flock(2) lock as the kernel prints it: the file's fileKey(), the taker's PID (0: not named here). */
interface LockLine {
  key: string;
  mode: LockMode;
  pid: number;
  blocked: boolean;
}

/** One line of /proc/locks or of a fdinfo "lock:" entry, flock locks only (granted or blocked). */
function parseLockLine(line: string): LockLine | undefined {
  // "1: FLOCK  ADVISORY  WRITE 8625 fe:00:2146340 0 EOF"; a blocked request has "->" after
  // the number (indented by its depth in the kernel's tree of waiters).
  const fields = line.trim().split(/\s+/);
  const blocked = fields[1] === "->";
  if (blocked) fields.splice(1, 1);
  if (fields[1] !== "FLOCK") return undefined;
  return { key: normalKey(fields[5] ?? ""), mode: fields[3] === "WRITE" ? "exclusive" : "shared", pid: Number(fields[4]), blocked };
}

/** The flock(2) locks of one file as /proc/locks shows them. */
export interface FileLocks {
  /**
   * the PIDs that took the granted locks (a taker may since have exited, a descendant
   * holding on); 0 for takers that this PID namespace cannot name
   */
  granted: number[];
  /**
   * The PIDs blocked waiting, in the order the kernel prints them: its tree of waiters in
   * pre-order, which for exclusive requests is a chain in arrival order. 0 stands for a
   * process in a PID namespace that this one cannot see.
   */
  blocked: number[];
}

/** /proc/locks as read: the flock(2) locks granted now and the requests blocked behind them. */
export interface LockTable {
  /** granted locks by fileKey() */
  granted: Map<string, Granted>;
  /** by fileKey(): every file with a granted lock */
  files: Map<string, FileLocks>;
}

/** One reading of /proc/locks, each granted lock once with the requests blocked behind it. */
function parseLockTable(text: string): LockTable {
  const table: LockTable = { granted: new Map(), files: new Map() };
  // A granted lock and its tree of waiters are one record; a record seen twice is skipped.
  let current: FileLocks | undefined;
  for (const line of text.split("\n")) {
    const lock = parseLockLine(line);
    if (!lock) continue;
    if (lock.blocked) {
      current?.blocked.push(lock.pid);
      continue;
    }
    let file = table.files.get(lock.key);
    if (!file) table.files.set(lock.key, (file = { granted: [], blocked: [] }));
    const seen = table.granted.get(lock.key);
    if (seen) seen.count++;
    else table.granted.set(lock.key, { mode: lock.mode, count: 1 });
    current = file.granted.includes(lock.pid) ? undefined : file;
    current?.granted.push(lock.pid);
  }
  return table;
}

/**
 * Reads /proc/locks; undefined where the kernel does not list its locks (not Linux).
 * The kernel hands the file out a page at a time, each page found again by counting
 * records from the start, so locks taken or released elsewhere between two pages shift
 * the count: a record can be skipped (or repeated) in one reading. So it is read twice:
 * the second reading answers for every file it shows, the first for a file it does not
 * (skipped, or released in between: that answer is a moment old). A PID in the answer
 * may thus belong to a process that has exited between the readings. In a PID namespace
 * other than the initial one, the locks it leaves out are added from the descriptors of
 * the processes here (addUnnamedLocks()).
 */
export function readLockTable(): LockTable | undefined {
  if (platform.os !== "linux") return undefined;
  const tables: LockTable[] = [];
  for (let i = 0; i < 2; i++) {
    try {
      tables.push(parseLockTable(fs().readFileSync("/proc/locks", "utf8")));
    } catch {
      return undefined;
    }
  }
  const [first, table] = tables as [LockTable, LockTable];
  for (const [key, file] of first.files) {
    if (table.files.has(key)) continue;
    table.files.set(key, file);
    table.granted.set(key, first.granted.get(key)!);
  }
  if (!listsEveryLock()) addUnnamedLocks(table);
  return table;
}

let initialPidNamespace: boolean | null | undefined;

/**
 * Is this process in the initial PID namespace (Linux: /proc/self/ns/pid is
 * PROC_PID_INIT_INO, whatever /proc is mounted)? undefined where that cannot be told: other
 * systems have no PID namespaces, or /proc is not there.
 */
export function inInitialPidNamespace(): boolean | undefined {
  if (initialPidNamespace === undefined) {
    initialPidNamespace = null;
    if (platform.initialPidNamespace !== undefined) {
      try {
        initialPidNamespace = fs().statSync("/proc/self/ns/pid").ino === platform.initialPidNamespace;
      } catch {
        // No /proc: cannot be told.
      }
    }
  }
  return initialPidNamespace ?? undefined;
}

/**
 * Does /proc/locks show every flock(2) lock? Only in the initial PID namespace. Elsewhere
 * the kernel (fs/locks.c, locks_show()) leaves out a lock whose taker this namespace cannot
 * name: a taker that has exited, its descriptor handed on (a plain acquire's holder
 * process), or one outside this namespace. Where this cannot be told, no.
 */
const listsEveryLock = (): boolean => inInitialPidNamespace() === true;

/**
 * Does grantedLocks() name every flock(2) lock? Not in a PID namespace other than the
 * initial one: a lock held only by processes this user may not look at (another user's, or
 * processes outside the namespace) is in neither /proc/locks nor the fdinfo it can read.
 */
export const locksListedInFull = (): boolean => platform.os !== "linux" || listsEveryLock();

/**
 * Adds to `table` the granted flock(2) locks /proc/locks leaves out: those the descriptors
 * of the processes this user may look at show with a taker this PID namespace cannot name
 * (PID 0 in a /proc/PID/fdinfo/FD "lock:" line; fs/locks.c, lock_get_status() prints every
 * lock of a descriptor). Such a lock's `count` is the number of descriptors that show it
 * (one for an exclusive lock): an open file description shared by several processes
 * counts once for each. Locks held only by processes outside this namespace stay unseen.
 */
function addUnnamedLocks(table: LockTable): void {
  const added = new Map<string, Granted>();
  for (const pid of processIds() ?? []) {
    let fds: string[];
    try {
      fds = fs().readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      for (const lock of locksThrough(pid, fd)) {
        if (lock.pid !== 0) continue;
        const seen = added.get(lock.key);
        if (!seen) added.set(lock.key, { mode: lock.mode, count: 1 });
        else if (lock.mode === "shared") seen.count++;
      }
    }
  }
  for (const [key, lock] of added) {
    const listed = table.granted.get(key);
    if (listed) listed.count += lock.count;
    else table.granted.set(key, lock);
    const file = table.files.get(key);
    if (!file) table.files.set(key, { granted: [0], blocked: [] });
    else if (!file.granted.includes(0)) file.granted.push(0);
  }
}

/** A file's flock(2) lock as /proc/locks shows it: its mode, and how many holders share it. */
export interface Granted {
  mode: LockMode;
  /**
   * the open file descriptions that hold it: 1 for an exclusive lock; in a PID namespace
   * other than the initial one possibly more (readLockTable())
   */
  count: number;
}

/**
 * The flock(2) locks granted now, by fileKey(), or undefined where the kernel does not
 * list them (no /proc/locks).
 */
export function grantedLocks(): Map<string, Granted> | undefined {
  return readLockTable()?.granted;
}

/**
 * The flock(2) locks granted now as /proc/locks alone shows them, by fileKey(); undefined
 * where that may not be all of them (a PID namespace other than the initial one) or there
 * is no such list (not Linux). For a question that the holders a record names can answer
 * (lockOf()), without grantedLocks()'s look at every process there.
 */
export function listedLocks(): Map<string, Granted> | undefined {
  if (platform.os !== "linux" || !listsEveryLock()) return undefined;
  return readLockTable()?.granted;
}

/** The lock `fd` of `pid` holds on the file `key`, from its fdinfo; undefined if none. */
function lockThrough(pid: number | string, fd: string, key: string): LockMode | undefined {
  return locksThrough(pid, fd).find((lock) => lock.key === key)?.mode;
}

/**
 * The flock(2) locks granted through the descriptor `fd` of `pid` (the "lock:" lines of its
 * fdinfo: every lock of that open file description); [] when it cannot be read.
 */
function locksThrough(pid: number | string, fd: string): LockLine[] {
  let info: string;
  try {
    info = fs().readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
  } catch {
    return [];
  }
  const locks: LockLine[] = [];
  for (const line of info.split("\n")) {
    if (!line.startsWith("lock:")) continue;
    const lock = parseLockLine(line.slice(5));
    if (lock && !lock.blocked) locks.push(lock);
  }
  return locks;
}

/** The PIDs in /proc (the processes of its PID namespace); undefined when it cannot be read. */
function processIds(): string[] | undefined {
  try {
    return fs().readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return undefined;
  }
}

/**
 * The lock that this process's descriptor `fd` (its open file description) holds on the
 * file `dev`/`ino`; undefined when none, or where that cannot be seen (not Linux).
 */
export function lockHeldThrough(fd: number, dev: number, ino: number): LockMode | undefined {
  if (platform.os !== "linux") return undefined;
  return lockThrough(process.pid, String(fd), fileKey(dev, ino));
}

/** The descriptors of `pid` open on a file whose key is in `keys` (all of them without `keys`). */
function descriptorsOn(pid: number | string, keys?: ReadonlySet<string>): { fd: string; key: string }[] {
  const { readdirSync, statSync } = fs();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const found: { fd: string; key: string }[] = [];
  for (const fd of fds) {
    let key: string;
    try {
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      key = fileKey(st.dev, st.ino);
    } catch {
      // Closed meanwhile, or a file this user may not look at.
      continue;
    }
    if (!keys || keys.has(key)) found.push({ fd, key });
  }
  return found;
}

/**
 * The path by which `pid` has the file `dev`/`ino` open (Linux: the link of one of its
 * /proc/PID/fd entries), or undefined: not open there, removed since (" (deleted)"), not
 * Linux, or another user's process.
 */
export function pathOpenBy(pid: number, dev: number, ino: number): string | undefined {
  if (platform.os !== "linux") return undefined;
  for (const { fd } of descriptorsOn(pid, new Set([fileKey(dev, ino)]))) {
    try {
      const path = fs().readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (path.startsWith("/") && !path.endsWith(" (deleted)")) return path;
    } catch {
      // Closed meanwhile.
    }
  }
  return undefined;
}

/**
 * Does `pid` hold a flock(2) lock on the file `dev`/`ino` (through any of its descriptors)?
 * undefined where that cannot be seen: not Linux, or another user's process.
 */
export function holdsLock(pid: number, dev: number, ino: number): boolean | undefined {
  return new ProcessCache().holdsLock(pid, dev, ino);
}

/**
 * The flock(2) lock `pid` holds on the file `dev`/`ino` (through any of its descriptors):
 * its mode, null when none, undefined where that cannot be seen (not Linux, or another
 * user's process).
 */
export function lockOf(pid: number, dev: number, ino: number): LockMode | null | undefined {
  return new ProcessCache().lockOf(pid, dev, ino);
}

/**
 * Facts about processes, each read at most once: a pass over many slots lists a process's
 * descriptors once, not once per slot it holds (a process may hold thousands).
 */
export class ProcessCache {
  /** by PID: its descriptors by fileKey(); null when they may not be looked at */
  private readonly descriptors = new Map<number, Map<string, string[]> | null>();
  private readonly starts = new Map<number, number | undefined>();

  /** startedAt(), read once per PID. */
  startedAt(pid: number): number | undefined {
    if (!this.starts.has(pid)) this.starts.set(pid, startedAt(pid));
    return this.starts.get(pid);
  }

  /** runningSince(), with the start time read once per PID. */
  runningSince(pid: number, seenAt: number): boolean {
    if (platform.os !== "linux") return exists(pid);
    const start = this.startedAt(pid);
    // A record keeps whole seconds; start times count clock ticks.
    return start !== undefined && start <= seenAt + 1;
  }

  /** holdsLock(), with the descriptors of `pid` listed once. */
  holdsLock(pid: number, dev: number, ino: number): boolean | undefined {
    const mode = this.lockOf(pid, dev, ino);
    return mode === undefined ? undefined : mode !== null;
  }

  /** lockOf(), with the descriptors of `pid` listed once. */
  lockOf(pid: number, dev: number, ino: number): LockMode | null | undefined {
    if (platform.os !== "linux") return undefined;
    if (!this.descriptors.has(pid)) this.descriptors.set(pid, this.list(pid));
    const table = this.descriptors.get(pid);
    // A zombie's descriptors are closed (its locks with them), and only root may look.
    if (table === null) return hasExited(pid) ? null : undefined;
    const key = fileKey(dev, ino);
    for (const fd of table?.get(key) ?? []) {
      const mode = lockThrough(pid, fd, key);
      if (mode) return mode;
    }
    return null;
  }

  private list(pid: number): Map<string, string[]> | null {
    try {
      fs().accessSync(`/proc/${pid}/fd`, fs().constants.R_OK);
    } catch {
      return null;
    }
    const table = new Map<string, string[]>();
    for (const { fd, key } of descriptorsOn(pid)) {
      const fds = table.get(key);
      if (fds) fds.push(fd);
      else table.set(key, [fd]);
    }
    return table;
  }
}

/**
 * Every process that holds a flock(2) lock on one of `files` (fileKey()s), found by looking
 * through every process's descriptors: the processes this user may look at (all of them
 * for root). undefined where the kernel does not show descriptors (not Linux).
 */
export function findHolders(files: ReadonlySet<string>): Map<string, LockHolder[]> | undefined {
  if (platform.os !== "linux") return undefined;
  const holders = new Map<string, LockHolder[]>();
  if (files.size === 0) return holders;
  const pids = processIds();
  if (!pids) return undefined;
  for (const pid of pids) {
    for (const { fd, key } of descriptorsOn(pid, files)) {
      const mode = lockThrough(pid, fd, key);
      if (!mode) continue;
      const list = holders.get(key) ?? [];
      if (!list.some((h) => h.pid === Number(pid))) list.push({ pid: Number(pid), mode });
      holders.set(key, list);
    }
  }
  return holders;
}

let bootTime: number | undefined;

/**
 * When `pid` started, in Unix seconds (to the clock tick), or undefined where that cannot be
 * read (gone, or not Linux). A PID together with its start time names one process: a PID
 * reused later has a later start.
 */
export function startedAt(pid: number): number | undefined {
  if (platform.os !== "linux") return undefined;
  try {
    const stat = fs().readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22, counted after the command name (which may contain spaces and parentheses).
    const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    bootTime ??= Number(/^btime (\d+)$/m.exec(fs().readFileSync("/proc/stat", "utf8"))?.[1]);
    return bootTime + ticks / clockTicksPerSecond();
  } catch {
    return undefined;
  }
}

/** Linux: has `pid` exited (gone, or a zombie not yet reaped)? */
function hasExited(pid: number): boolean {
  try {
    const stat = fs().readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat[stat.lastIndexOf(")") + 2];
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}

/**
 * Is `pid` still the process that was running at Unix time `seenAt` (seconds, as a record
 * keeps it), and not a later one under a reused PID? Where start times cannot be read (not
 * Linux), only whether some process has that PID.
 */
export function runningSince(pid: number, seenAt: number): boolean {
  return new ProcessCache().runningSince(pid, seenAt);
}

/**
 * Is `pid` the very process that startedAt() said started at `start`, and still running
 * (Linux: not a zombie)? Where start times cannot be read (`start` undefined, or not
 * Linux), only whether some process has that PID.
 */
export function sameProcess(pid: number, start: number | undefined): boolean {
  if (platform.os !== "linux") return exists(pid);
  // A zombie has exited: only its parent has not looked yet (a pidfd says the same).
  return (start === undefined ? exists(pid) : startedAt(pid) === start) && !hasExited(pid);
}

function exists(pid: number): boolean {
  const r = kill(pid, 0);
  return r === 0 || r === -E.EPERM;
}
