// Who holds a lock, as the kernel says (invariant 1). A record names the process that took
// a slot, but that process may be gone while a descendant that inherited the locked open
// file description still holds it, and a recorded PID may since have been reused. On
// Linux the kernel shows each granted flock(2) lock in /proc/locks, and in
// /proc/PID/fdinfo/FD of every process that shares the locked open file description
// (proc(5), "/proc/pid/fdinfo"). Elsewhere these answer `undefined`: the callers then fall
// back on the record, checked with kill(pid, 0).
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

/** One line of /proc/locks or of a fdinfo "lock:" entry: granted flock locks only. */
function parseLockLine(line: string): { key: string; mode: LockHolder["mode"]; pid: number } | undefined {
  // "1: FLOCK  ADVISORY  WRITE 8625 fe:00:2146340 0 EOF"; a blocked request has "->" after the number.
  const fields = line.trim().split(/\s+/);
  if (fields[1] !== "FLOCK") return undefined;
  return { key: normalKey(fields[5] ?? ""), mode: fields[3] === "WRITE" ? "exclusive" : "shared", pid: Number(fields[4]) };
}

/** A file's flock(2) lock as /proc/locks shows it: its mode, and how many holders share it. */
export interface Granted {
  mode: LockMode;
  /** the open file descriptions that hold it: 1 for an exclusive lock */
  count: number;
}

/**
 * The flock(2) locks granted now, by fileKey(), or undefined where the kernel does not
 * list them (no /proc/locks).
 */
export function grantedLocks(): Map<string, Granted> | undefined {
  if (platform.os !== "linux") return undefined;
  let text: string;
  try {
    text = fs().readFileSync("/proc/locks", "utf8");
  } catch {
    return undefined;
  }
  const locks = new Map<string, Granted>();
  for (const line of text.split("\n")) {
    const lock = parseLockLine(line);
    if (!lock) continue;
    const seen = locks.get(lock.key);
    if (seen) seen.count++;
    else locks.set(lock.key, { mode: lock.mode, count: 1 });
  }
  return locks;
}

/** The lock `fd` of `pid` holds on the file `key`, from its fdinfo; undefined if none. */
function lockThrough(pid: number | string, fd: string, key: string): LockMode | undefined {
  let info: string;
  try {
    info = fs().readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
  } catch {
    return undefined;
  }
  for (const line of info.split("\n")) {
    if (!line.startsWith("lock:")) continue;
    const lock = parseLockLine(line.slice(5));
    if (lock?.key === key) return lock.mode;
  }
  return undefined;
}

/**
 * The lock that this process's descriptor `fd` (its open file description) holds on the
 * file `dev`/`ino`; undefined when none, or where that cannot be seen (not Linux).
 */
export function lockHeldThrough(fd: number, dev: number, ino: number): LockMode | undefined {
  if (platform.os !== "linux") return undefined;
  return lockThrough(process.pid, String(fd), fileKey(dev, ino));
}

/** The descriptors of `pid` open on a file whose key is in `keys`. */
function descriptorsOn(pid: number | string, keys: ReadonlySet<string>): { fd: string; key: string }[] {
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
    if (keys.has(key)) found.push({ fd, key });
  }
  return found;
}

/**
 * Does `pid` hold a flock(2) lock on the file `dev`/`ino` (through any of its descriptors)?
 * undefined where that cannot be seen: not Linux, or another user's process.
 */
export function holdsLock(pid: number, dev: number, ino: number): boolean | undefined {
  if (platform.os !== "linux") return undefined;
  const key = fileKey(dev, ino);
  if (!fs().existsSync(`/proc/${pid}`)) return false;
  try {
    fs().accessSync(`/proc/${pid}/fd`, fs().constants.R_OK);
  } catch {
    return undefined;
  }
  for (const { fd } of descriptorsOn(pid, new Set([key]))) if (lockThrough(pid, fd, key)) return true;
  return false;
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
  let pids: string[];
  try {
    pids = fs().readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return undefined;
  }
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

/**
 * Is `pid` still the process that was running at Unix time `seenAt` (seconds, as a record
 * keeps it), and not a later one under a reused PID? Where start times cannot be read (not
 * Linux), only whether some process has that PID.
 */
export function runningSince(pid: number, seenAt: number): boolean {
  if (platform.os !== "linux") return exists(pid);
  const start = startedAt(pid);
  // A record keeps whole seconds; start times count clock ticks.
  return start !== undefined && start <= seenAt + 1;
}

/**
 * Is `pid` the very process that startedAt() said started at `start`? Where start times
 * cannot be read (`start` undefined, or not Linux), only whether some process has that PID.
 */
export function sameProcess(pid: number, start: number | undefined): boolean {
  if (start === undefined || platform.os !== "linux") return exists(pid);
  return startedAt(pid) === start;
}

function exists(pid: number): boolean {
  const r = kill(pid, 0);
  return r === 0 || r === -E.EPERM;
}
