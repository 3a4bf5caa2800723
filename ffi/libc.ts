// The one place that talks to libc. Everything returns plain numbers: a result, or a
// negative errno; nothing here throws for a failed system call.
import { dlopen, FFIType, read, ptr as addressOf, CString, type Pointer } from "bun:ffi";
import { platform as P, LOCK, LOG, POLLIN, type ErrnoName, type Field } from "./platform";

export { LOCK, LOG, POLLIN };
export { platform } from "./platform";

const { i32, u32, i64, u64, ptr, cstring, void: none } = FFIType;

// Bun compiles a trampoline for every symbol at dlopen time (~20 µs each), so the calls on
// the path that takes a lock and runs a command are bound at start-up and the rest on
// first use.
const hot = {
  open: { args: [ptr, i32, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  pread: { args: [i32, ptr, u64, i64], returns: i64 },
  pwrite: { args: [i32, ptr, u64, i64], returns: i64 },
  ftruncate: { args: [i32, i64], returns: i32 },
  flock: { args: [i32, i32], returns: i32 },
  unlink: { args: [ptr], returns: i32 },
  access: { args: [ptr, i32], returns: i32 },
  getuid: { args: [], returns: i32 },
  gethostname: { args: [ptr, u64], returns: i32 },
} as const;

// Named differently on each system; hot too.
const renamed = {
  [P.errnoFn]: { args: [], returns: ptr },
  [P.fstatFn]: { args: [i32, ptr], returns: i32 },
  [P.lstatFn]: { args: [ptr, ptr], returns: i32 },
};

const cold = {
  read: { args: [i32, ptr, u64], returns: i64 },
  mkdir: { args: [ptr, i32], returns: i32 },
  chmod: { args: [ptr, i32], returns: i32 },
  fchmod: { args: [i32, i32], returns: i32 },
  isatty: { args: [i32], returns: i32 },
  kill: { args: [i32, i32], returns: i32 },
  getppid: { args: [], returns: i32 },
  sysconf: { args: [i32], returns: i64 },
  poll: { args: [ptr, u64, i32], returns: i32 },
  strerror: { args: [i32], returns: cstring },
  openlog: { args: [ptr, i32, i32], returns: none },
  syslog: { args: [i32, ptr], returns: none },
} as const;

const linuxOnly = {
  syscall: { args: [i64, i64, i64], returns: i64 },
  inotify_init1: { args: [i32], returns: i32 },
  inotify_add_watch: { args: [i32, ptr, i32], returns: i32 },
  inotify_rm_watch: { args: [i32, i32], returns: i32 },
} as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...a: any[]) => any;

function load(wanted: Record<string, { args: readonly FFIType[]; returns: FFIType }>): Record<string, Fn> {
  let lastError: unknown;
  for (const name of P.libc) {
    try {
      return dlopen(name, wanted).symbols as unknown as Record<string, Fn>;
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

const loaded = load({ ...hot, ...renamed });
const H = loaded as Record<keyof typeof hot, Fn>;
const errnoPtr = loaded[P.errnoFn] as () => Pointer;
const fstatFn = loaded[P.fstatFn] as (fd: number, buf: Uint8Array) => number;
const lstatFn = loaded[P.lstatFn] as (path: Uint8Array, buf: Uint8Array) => number;

const bsdOnly = {
  sysctl: { args: [ptr, u32, ptr, ptr, ptr, u64], returns: i32 },
} as const;

const kqueueSymbols = {
  kqueue: { args: [], returns: i32 },
  kevent: { args: [i32, ptr, i32, ptr, i32, ptr], returns: i32 },
} as const;

type ColdName = keyof typeof cold | keyof typeof linuxOnly | keyof typeof bsdOnly | keyof typeof kqueueSymbols;
let coldSymbols: Record<ColdName, Fn> | undefined;
const X = (): Record<ColdName, Fn> =>
  (coldSymbols ??= load(
    P.os === "linux" ? { ...cold, ...linuxOnly } : P.kevent ? { ...cold, ...bsdOnly, ...kqueueSymbols } : { ...cold, ...bsdOnly },
  ) as Record<ColdName, Fn>);

const encoder = new TextEncoder();
const cstr = (s: string): Uint8Array => encoder.encode(s + "\0");

/** The errno of the call that just failed, as a negative number. */
function fail(): number {
  return -read.i32(errnoPtr(), 0);
}

const check = (r: number | bigint): number => (Number(r) < 0 ? fail() : Number(r));

export const E = P.E;
export const O = P.O;

export function errnoName(errno: number): ErrnoName | undefined {
  const n = Math.abs(errno);
  return (Object.keys(P.E) as ErrnoName[]).find((k) => P.E[k] === n);
}

export function strerror(errno: number): string {
  return String(X().strerror(Math.abs(errno)) as CString);
}

export function open(path: string, flags: number, mode = 0o666): number {
  return check(H.open(cstr(path), flags, mode) as number);
}

export function close(fd: number): void {
  H.close(fd);
}

export function flock(fd: number, op: number): number {
  return check(H.flock(fd, op) as number);
}

export function pread(fd: number, buf: Uint8Array, offset = 0): number {
  return check(H.pread(fd, buf, buf.byteLength, offset) as bigint);
}

/** Reads whatever is there now; for non-blocking descriptors. */
export function readSome(fd: number, buf: Uint8Array): number {
  return check(X().read(fd, buf, buf.byteLength) as bigint);
}

export function pwrite(fd: number, buf: Uint8Array, offset = 0): number {
  return check(H.pwrite(fd, buf, buf.byteLength, offset) as bigint);
}

export function ftruncate(fd: number, length: number): number {
  return check(H.ftruncate(fd, length) as number);
}

export function unlink(path: string): number {
  return check(H.unlink(cstr(path)) as number);
}

export function mkdir(path: string, mode: number): number {
  return check(X().mkdir(cstr(path), mode) as number);
}

export function chmod(path: string, mode: number): number {
  return check(X().chmod(cstr(path), mode) as number);
}

export function fchmod(fd: number, mode: number): number {
  return check(X().fchmod(fd, mode) as number);
}

/** access(2) with W_OK|X_OK: may this process create files in the directory? */
export function canWriteDir(path: string): boolean {
  return (H.access(cstr(path), 2 | 1) as number) === 0;
}

export function isatty(fd: number): boolean {
  return (X().isatty(fd) as number) === 1;
}

export function kill(pid: number, signal: number): number {
  return check(X().kill(pid, signal) as number);
}

export function getppid(): number {
  return X().getppid() as number;
}

export function getuid(): number {
  return H.getuid() as number;
}

export function hostname(): string {
  const buf = new Uint8Array(256);
  if ((H.gethostname(buf, buf.byteLength) as number) !== 0) return "";
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

export function onlineCpus(): number {
  const n = Number(X().sysconf(P.SC_NPROCESSORS_ONLN) as bigint);
  if (n > 0) return n;
  const hw = P.hwNcpu ? sysctl(P.hwNcpu) : -1;
  return typeof hw !== "number" && hw.byteLength >= 4 ? Math.max(1, new DataView(hw.buffer, hw.byteOffset).getInt32(0, true)) : 1;
}

/** sysctl(3) by MIB: the value's bytes, or a negative errno. */
export function sysctl(mib: number[]): Uint8Array | number {
  if (P.os === "linux") return -P.E.ENOSYS;
  const name = new Int32Array(mib);
  const length = new BigUint64Array(1);
  let r = check(X().sysctl(name, mib.length, null, length, null, 0) as number);
  if (r < 0) return r;
  const buf = new Uint8Array(Number(length[0]));
  r = check(X().sysctl(name, mib.length, buf, length, null, 0) as number);
  return r < 0 ? r : buf.subarray(0, Number(length[0]));
}

/** Where a buffer lives, for layouts that answer with pointers into it (OpenBSD's argv). */
export const addressOfBuffer = (buf: Uint8Array): number => Number(addressOf(buf));

/**
 * A kqueue descriptor that reports when `pid` exits (EVFILT_PROC, NOTE_EXIT), or a negative
 * errno (ESRCH: already gone). kqueues are not inherited: the waiting process makes its own.
 */
export function processExitQueue(pid: number): number {
  const K = P.kevent;
  if (!K) return -P.E.ENOSYS;
  const kq = check(X().kqueue() as number);
  if (kq < 0) return kq;
  const change = new Uint8Array(K.size);
  const v = new DataView(change.buffer);
  v.setBigUint64(0, BigInt(pid), true);
  v.setInt16(K.filter, K.EVFILT_PROC, true);
  v.setUint16(K.flags, K.EV_ADD | K.EV_ONESHOT, true);
  v.setUint32(K.fflags, K.NOTE_EXIT, true);
  const r = check(X().kevent(kq, change, 1, null, 0, null) as number);
  if (r < 0) {
    close(kq);
    return r;
  }
  return kq;
}

/** Blocks until the queue reports; 1 when it did, -EINTR when a signal came first. */
export function waitQueue(kq: number): number {
  return check(X().kevent(kq, null, 0, new Uint8Array(P.kevent!.size), 1, null) as number);
}

export function signalNumber(name: string): number | undefined {
  return P.SIG[name];
}

export interface Stat {
  dev: number;
  ino: number;
  nlink: number;
  mode: number;
  uid: number;
  size: number;
}

const statBuf = new Uint8Array(P.stat.size);
const statView = new DataView(statBuf.buffer);

function field(f: Field): number {
  switch (f.size) {
    case 2:
      return statView.getUint16(f.off, true);
    case 4:
      return statView.getUint32(f.off, true);
    case 8:
      return Number(statView.getBigUint64(f.off, true));
  }
}

function decodeStat(): Stat {
  const L = P.stat;
  return { dev: field(L.dev), ino: field(L.ino), nlink: field(L.nlink), mode: field(L.mode), uid: field(L.uid), size: field(L.fileSize) };
}

export function fstat(fd: number): Stat | number {
  const r = fstatFn(fd, statBuf);
  return r < 0 ? fail() : decodeStat();
}

export function lstat(path: string): Stat | number {
  const r = lstatFn(cstr(path), statBuf);
  return r < 0 ? fail() : decodeStat();
}

/**
 * Waits until one of `fds` is readable or `timeoutMs` passes (-1 = forever).
 * Returns the indexes that are ready, or a negative errno (EINTR when a signal came).
 */
export function pollReadable(fds: number[], timeoutMs: number): number[] | number {
  const set = new Int32Array(fds.length * 2);
  fds.forEach((fd, i) => {
    set[i * 2] = fd;
    set[i * 2 + 1] = POLLIN;
  });
  const r = X().poll(set, fds.length, Math.max(-1, Math.floor(timeoutMs))) as number;
  if (r < 0) return fail();
  const ready: number[] = [];
  // struct pollfd { int fd; short events; short revents; }: revents is the high half.
  for (let i = 0; i < fds.length; i++) if (set[i * 2 + 1]! >>> 16 !== 0) ready.push(i);
  return ready;
}

/** A descriptor that becomes readable when `pid` exits; negative errno when unsupported. */
export function pidfdOpen(pid: number): number {
  if (P.SYS_pidfd_open === undefined || P.os !== "linux") return -P.E.ENOSYS;
  return check(X().syscall(P.SYS_pidfd_open, pid, 0) as bigint);
}

export function inotifyInit(): number {
  if (!P.IN || P.os !== "linux") return -P.E.ENOSYS;
  return check(X().inotify_init1(P.IN.NONBLOCK | P.IN.CLOEXEC) as number);
}

export function inotifyAddWatch(ifd: number, path: string, mask: number): number {
  return check(X().inotify_add_watch(ifd, cstr(path), mask) as number);
}

export function inotifyRmWatch(ifd: number, wd: number): void {
  X().inotify_rm_watch(ifd, wd);
}

export function openlog(ident: Uint8Array, option: number, facility: number): void {
  X().openlog(ident, option, facility);
}

export function syslog(priority: number, message: string): void {
  // The message is the format string: escape conversions so that nothing is read from varargs.
  X().syslog(priority, cstr(message.replaceAll("%", "%%")));
}
