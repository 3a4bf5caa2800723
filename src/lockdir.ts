// Choosing, creating and vetting the lock directory.
//
// The default depends only on which system directories exist, never on who runs first or
// what each user may write, so that every user and every mode meets the same locks: the
// first existing of SYSTEM_BASES, or its subdirectory "waitlock" when that exists and is
// root's (made by `make install`, kept across reboots by its tmpfiles.d entry). Nothing is
// ever created there by waitlock itself.
import { S_IFDIR, S_IFLNK, S_IFMT, S_ISVTX, S_IWOTH } from "../ffi/platform";
import { E, canWriteDir, chmod, lstat, mkdir, type Stat } from "../ffi/libc";
import { EXIT, WaitlockError } from "./errors";
import { debug } from "./log";
import { sysError } from "./syserror";

export interface LockDir {
  path: string;
  /** world-writable (and sticky): lock files are made writable by every user */
  shared: boolean;
}

/** Where the default lock directory may be, in order of preference. */
export const SYSTEM_BASES = ["/run/lock", "/var/lock", "/tmp"];
/** The subdirectory of a base that `make install` prepares. */
export const SUBDIR = "waitlock";

const unusable = (path: string, why: string) => new WaitlockError(EXIT.LOCKDIR, path, why);

/** `path` without trailing slashes (a loop: a regex is compiled at start-up on first use). */
function trimSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path[end - 1] === "/") end--;
  return path.slice(0, end);
}

function parentOf(path: string): string {
  const trimmed = trimSlashes(path);
  const i = trimmed.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : trimmed.slice(0, i);
}

const isWorldWritable = (st: Stat) => (st.mode & S_IWOTH) !== 0;

/** Refuses a directory that another user could swap or empty under us. */
function vet(path: string, st: Stat): LockDir {
  const type = st.mode & S_IFMT;
  if (type === S_IFLNK) throw unusable(path, "lock directory is a symbolic link; refusing to use it");
  if (type !== S_IFDIR) throw unusable(path, "lock directory is not a directory");
  if (isWorldWritable(st) && (st.mode & S_ISVTX) === 0)
    throw unusable(path, "lock directory is world-writable without the sticky bit; refusing to use it (chmod +t)");
  return { path, shared: isWorldWritable(st) };
}

/**
 * Creates `path` and any missing parents. A directory made inside a world-writable one is
 * 01777 so that every user meets the same locks.
 */
function create(path: string): number {
  const parent = parentOf(path);
  let pst = lstat(parent);
  if (pst === -E.ENOENT && parent !== path) {
    const r = create(parent);
    if (r < 0 && r !== -E.EEXIST) return r;
    pst = lstat(parent);
  }
  const shared = typeof pst !== "number" && isWorldWritable(pst);
  const r = mkdir(path, 0o700);
  if (r < 0) return r;
  // mkdir's mode passes through the umask; chmod sets what we mean.
  chmod(path, shared ? 0o1777 : 0o755);
  debug(`created lock directory ${path} (mode ${shared ? "1777" : "755"})`);
  return 0;
}

/** An explicit directory (--lock-dir or WAITLOCK_DIR), created when `writing`; any problem is an error. */
function explicit(path: string, writing: boolean): LockDir | undefined {
  let st = lstat(path);
  if (st === -E.ENOENT) {
    if (!writing) return undefined;
    const r = create(path);
    if (r < 0 && r !== -E.EEXIST) {
      if (r === -E.EACCES || r === -E.EPERM) throw sysError(path, r, "cannot create lock directory");
      throw unusable(path, `cannot create lock directory: ${sysError(path, r).message}`);
    }
    st = lstat(path);
  }
  if (typeof st === "number") {
    if (st === -E.EACCES) throw sysError(path, st, "cannot reach lock directory");
    throw unusable(path, sysError(path, st).message);
  }
  const dir = vet(path, st);
  if (writing) {
    const w = canWriteDir(path);
    if (w === -E.EROFS) throw unusable(path, "lock directory is on a read-only file system");
    if (w < 0) throw sysError(path, w, "cannot create lock files in this directory");
  }
  return dir;
}

/** A directory's own status, following a symbolic link only where root made it (/var/lock -> /run/lock). */
function systemDir(path: string): { path: string; st: Stat } | undefined {
  const st = lstat(path);
  if (typeof st === "number") return undefined;
  if ((st.mode & S_IFMT) !== S_IFLNK) return (st.mode & S_IFMT) === S_IFDIR ? { path, st } : undefined;
  if (st.uid !== 0) return undefined;
  const { realpathSync } = require("node:fs") as typeof import("node:fs");
  try {
    return systemDir(realpathSync(path));
  } catch {
    return undefined;
  }
}

/** The default directory: see the header. undefined when no system directory exists at all. */
function defaultDir(): { path: string; st: Stat } | undefined {
  for (const base of SYSTEM_BASES) {
    const dir = systemDir(base);
    if (!dir) continue;
    const sub = lstat(`${dir.path}/${SUBDIR}`);
    if (typeof sub !== "number" && (sub.mode & S_IFMT) === S_IFDIR && sub.uid === 0) return { path: `${dir.path}/${SUBDIR}`, st: sub };
    if (typeof sub !== "number") debug(`${dir.path}/${SUBDIR} is not a directory of root's; not using it`);
    return dir;
  }
  return undefined;
}

/**
 * The lock directory: `explicitPath` (--lock-dir), else WAITLOCK_DIR from `env`, else the
 * system default. `writing` modes (acquire, --exec) create an explicit directory that is
 * missing; the others (--list, --check, --done) create nothing and get undefined for a
 * directory that does not exist (nothing can be held there).
 * Throws WaitlockError 6 (unusable: a symlink, world-writable without the sticky bit, no
 * default, a default this user cannot write to) or 5 (permission denied).
 */
export function resolveLockDir(explicitPath: string | undefined, env: Record<string, string | undefined>, writing = true): LockDir | undefined {
  const given = explicitPath ?? (env.WAITLOCK_DIR || undefined);
  if (given !== undefined) {
    const dir = explicit(given, writing);
    debug(`lock directory ${given} (given${dir ? "" : "; it does not exist"})`);
    return dir;
  }
  const found = defaultDir();
  if (!found)
    throw unusable(SYSTEM_BASES.join(", "), "no system lock directory exists; set WAITLOCK_DIR or use --lock-dir");
  const dir = vet(found.path, found.st);
  const w = writing ? canWriteDir(dir.path) : 0;
  if (w === -E.EROFS) throw unusable(dir.path, "the default lock directory is on a read-only file system; set WAITLOCK_DIR or use --lock-dir");
  if (w < 0)
    throw unusable(dir.path, "the default lock directory is not writable for this user; set WAITLOCK_DIR, use --lock-dir, or ask root to run 'make install'");
  debug(`lock directory ${dir.path}`);
  return dir;
}
