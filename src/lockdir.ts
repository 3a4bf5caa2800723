// Choosing, creating and vetting the lock directory.
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

export const SYSTEM_DIRS = ["/var/run/waitlock", "/run/waitlock", "/var/lock/waitlock", "/tmp/waitlock"];

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
 * Creates `path` and any missing parents. A directory made inside a world-writable one
 * (or one of the system-wide defaults) is 01777 so that every user meets the same locks.
 */
function create(path: string, forceShared: boolean): number {
  const parent = parentOf(path);
  let pst = lstat(parent);
  if (pst === -E.ENOENT && parent !== path) {
    const r = create(parent, false);
    if (r < 0 && r !== -E.EEXIST) return r;
    pst = lstat(parent);
  }
  const shared = forceShared || (typeof pst !== "number" && isWorldWritable(pst));
  const r = mkdir(path, 0o700);
  if (r < 0) return r;
  // mkdir's mode passes through the umask; chmod sets what we mean.
  chmod(path, shared ? 0o1777 : 0o755);
  debug(`created lock directory ${path} (mode ${shared ? "1777" : "755"})`);
  return 0;
}

/** An explicit directory (--lock-dir or WAITLOCK_DIR): any problem is an error. */
function explicit(path: string): LockDir {
  let st = lstat(path);
  if (st === -E.ENOENT) {
    const r = create(path, false);
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
  const w = canWriteDir(path);
  if (w === -E.EROFS) throw unusable(path, "lock directory is on a read-only file system");
  if (w < 0) throw sysError(path, w, "cannot create lock files in this directory");
  return dir;
}

/** A default: a missing or unwritable one is skipped, a dangerous one refused. */
function candidate(path: string, shared: boolean): LockDir | undefined {
  let st = lstat(path);
  if (st === -E.ENOENT) {
    const r = create(path, shared);
    if (r < 0 && r !== -E.EEXIST) return undefined;
    st = lstat(path);
  }
  if (typeof st === "number") return undefined;
  const dir = vet(path, st);
  return canWriteDir(path) === 0 ? dir : undefined;
}

/**
 * Every mode resolves the directory the same way, so that --list and --check look where
 * acquirers lock.
 */
export function resolveLockDir(explicitPath: string | undefined, env: Record<string, string | undefined>): LockDir {
  if (explicitPath !== undefined) {
    const dir = explicit(explicitPath);
    debug(`lock directory ${dir.path} (given)`);
    return dir;
  }
  // Plain loops, no map or destructuring: the default path is a lock path too
  // (test/startup.test.ts).
  const tried: string[] = [];
  const usable = (path: string, shared: boolean): LockDir | undefined => {
    const dir = candidate(path, shared);
    if (dir) debug(`lock directory ${dir.path}`);
    else {
      debug(`lock directory candidate ${path} is not usable`);
      tried.push(path);
    }
    return dir;
  };
  for (const path of SYSTEM_DIRS) {
    const dir = usable(path, true);
    if (dir) return dir;
  }
  const home = env.HOME ? usable(`${trimSlashes(env.HOME)}/.waitlock`, false) : undefined;
  const dir = home ?? usable("./waitlock", false);
  if (dir) return dir;
  throw unusable(tried.join(", "), "no usable lock directory (set WAITLOCK_DIR or --lock-dir)");
}
