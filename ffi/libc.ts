// The one place that talks to libc. Everything returns plain numbers: a result, or a
// negative errno; nothing here throws for a failed system call.
import type { CString, Pointer } from "bun:ffi";
import { platform, LOCK, LOG, POLLIN, WAIT, syslogFacilities, type ErrnoName, type Field, type SpawnAttrLayout, type Syscalls } from "./platform";

export { LOCK, LOG, POLLIN, WAIT, syslogFacilities };
export { platform } from "./platform";

/** bun:ffi's FFIType codes (pinned by test/unit/ffi.test.ts), so that naming one loads nothing. */
const FFI_TYPE = { i32: 5, u32: 6, i64: 7, u64: 8, ptr: 12, none: 13, cstring: 14, i64_fast: 15 } as const;
const { i32, u32, i64, i64_fast, u64, ptr, cstring, none } = FFI_TYPE;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...a: any[]) => any;
type Signatures = Record<string, { args: readonly number[]; returns: number }>;

interface FFI {
  dlopen(path: string, symbols: Signatures): { symbols: Record<string, Fn> };
  ptr(view: ArrayBufferView): number;
  read: { i32(address: Pointer | number, offset: number): number; u8(address: number, offset: number): number; ptr(address: number, offset: number): number };
  toArrayBuffer(address: number, offset: number, length: number): ArrayBuffer;
}

/**
 * The bun:ffi module is JavaScript that Bun compiles when it is first imported (a cost to
 * every start: bench/TUNING.md, second round), and it wraps each symbol in a generated
 * function that coerces the arguments. The Linux path passes only 64-bit integers, which Bun's native layer underneath
 * (Bun.FFI) converts exactly by itself, so that path calls it directly when it is there.
 */
const ffiModule = (): FFI => require("bun:ffi") as FFI;
const nativeFFI = (Bun as unknown as { FFI?: FFI }).FFI;

function load(wanted: Signatures, ffi: FFI = ffiModule()): Record<string, Fn> {
  let lastError: unknown;
  for (const name of platform.libc) {
    try {
      return ffi.dlopen(name, wanted).symbols;
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

type SyscallFn = (nr: number, a: number, b: number, c: number, d: number) => number;

/** The system calls waitlock makes. Each returns its result, or -1 with errno set. */
interface Calls {
  open(path: Uint8Array, flags: number, mode: number): number;
  close(fd: number): number;
  read(fd: number, buf: Uint8Array): number;
  pread(fd: number, buf: Uint8Array, offset: number): number;
  pwrite(fd: number, buf: Uint8Array, offset: number): number;
  ftruncate(fd: number, length: number): number;
  flock(fd: number, op: number): number;
  unlink(path: Uint8Array): number;
  access(path: Uint8Array, mode: number): number;
  mkdir(path: Uint8Array, mode: number): number;
  chmod(path: Uint8Array, mode: number): number;
  fchmod(fd: number, mode: number): number;
  fstat(fd: number, buf: Uint8Array): number;
  lstat(path: Uint8Array, buf: Uint8Array): number;
  kill(pid: number, signal: number): number;
  getppid(): number;
  getuid(): number;
  /** 1 when `fd` is a terminal */
  isatty(fd: number): number;
  /** the host name, NUL-terminated, into `buf` */
  hostname(buf: Uint8Array): number;
  /** struct pollfd[]; timeoutMs -1 waits forever */
  poll(set: Int32Array, count: number, timeoutMs: number): number;
  /** wait4/waitpid(pid, status, options): the PID reported, 0 when nothing changed (WNOHANG) */
  wait(pid: number, status: Int32Array, options: number): number;
  /** the foreground process group of the terminal at `fd`, or -1 (not the controlling terminal) */
  tcgetpgrp(fd: number): number;
  tcsetpgrp(fd: number, pgid: number): number;
  getpgrp(): number;
  /** setpgid(0, 0): the calling process leads a process group of its own */
  newProcessGroup(): number;
  /** sigaction(sig, act, old): a struct sigaction starts with its handler on every system */
  sigaction(sig: number, act: Uint8Array | null, old: Uint8Array | null): number;
  /** sigprocmask(how, set, old), for the calling (JavaScript) thread */
  sigprocmask(how: number, set: Uint8Array | null, old: Uint8Array | null): number;
  /** ioctl(fd, FIONCLEX): the descriptor survives exec */
  clearCloseOnExec(fd: number): number;
}

/**
 * Linux: one libc symbol, syscall(2), carries every call. Bun compiles a trampoline per
 * bound symbol at dlopen time, at a cost to start-up (bench/TUNING.md), so the errno
 * location is bound only when a call first fails: a run in which nothing fails never pays
 * for it.
 */
function linuxCalls(nr: Syscalls, ffi: FFI): { calls: Calls; errno: () => Pointer; syscall: SyscallFn } {
  const lib = load({ syscall: { args: [i64_fast, i64_fast, i64_fast, i64_fast, i64_fast], returns: i64_fast } }, ffi);
  const call = lib.syscall as SyscallFn;
  // The buffers stay referenced by the caller for the duration of the call.
  const at = (buf: ArrayBufferView) => ffi.ptr(buf);
  // Scratch buffers for calls off the lock path, made on first use: each typed-array kind
  // made at start-up is GC heap the run must fault in.
  let utsname: Uint8Array | undefined;
  let termios: Uint8Array | undefined;
  let timespec: BigInt64Array | undefined;
  let pgrp: Int32Array | undefined;
  return {
    syscall: call,
    errno: () => load({ [platform.errnoFn]: { args: [], returns: ptr } }, ffi)[platform.errnoFn]!(),
    calls: {
      open: (path, flags, mode) => call(nr.openat, nr.AT_FDCWD, at(path), flags, mode),
      close: (fd) => call(nr.close, fd, 0, 0, 0),
      read: (fd, buf) => call(nr.read, fd, at(buf), buf.byteLength, 0),
      pread: (fd, buf, offset) => call(nr.pread64, fd, at(buf), buf.byteLength, offset),
      pwrite: (fd, buf, offset) => call(nr.pwrite64, fd, at(buf), buf.byteLength, offset),
      ftruncate: (fd, length) => call(nr.ftruncate, fd, length, 0, 0),
      flock: (fd, op) => call(nr.flock, fd, op, 0, 0),
      unlink: (path) => call(nr.unlinkat, nr.AT_FDCWD, at(path), 0, 0),
      access: (path, mode) => call(nr.faccessat, nr.AT_FDCWD, at(path), mode, 0),
      mkdir: (path, mode) => call(nr.mkdirat, nr.AT_FDCWD, at(path), mode, 0),
      chmod: (path, mode) => call(nr.fchmodat, nr.AT_FDCWD, at(path), mode, 0),
      fchmod: (fd, mode) => call(nr.fchmod, fd, mode, 0, 0),
      fstat: (fd, buf) => call(nr.fstat, fd, at(buf), 0, 0),
      lstat: (path, buf) => call(nr.newfstatat, nr.AT_FDCWD, at(path), at(buf), nr.AT_SYMLINK_NOFOLLOW),
      kill: (pid, signal) => call(nr.kill, pid, signal, 0, 0),
      getppid: () => call(nr.getppid, 0, 0, 0, 0),
      getuid: () => call(nr.getuid, 0, 0, 0, 0),
      isatty: (fd) => (call(nr.ioctl, fd, nr.TCGETS, at((termios ??= new Uint8Array(64))), 0) === 0 ? 1 : 0),
      hostname: (buf) => {
        // struct utsname: six 65-byte fields; the node name is the second.
        utsname ??= new Uint8Array(6 * 65);
        if (call(nr.uname, at(utsname), 0, 0, 0) < 0) return -1;
        buf.set(utsname.subarray(65, 65 + (buf.byteLength < 65 ? buf.byteLength : 65)));
        return 0;
      },
      poll: (set, count, timeoutMs) => {
        if (timeoutMs < 0) return call(nr.ppoll, at(set), count, 0, 0);
        timespec ??= new BigInt64Array(2);
        timespec[0] = BigInt(Math.floor(timeoutMs / 1000));
        timespec[1] = BigInt((timeoutMs % 1000) * 1_000_000);
        return call(nr.ppoll, at(set), count, at(timespec), 0);
      },
      wait: (pid, status, options) => call(nr.wait4, pid, at(status), options, 0),
      tcgetpgrp: (fd) => (call(nr.ioctl, fd, nr.TIOCGPGRP, at((pgrp ??= new Int32Array(1))), 0) === 0 ? pgrp[0]! : -1),
      tcsetpgrp: (fd, pgid) => {
        (pgrp ??= new Int32Array(1))[0] = pgid;
        return call(nr.ioctl, fd, nr.TIOCSPGRP, at(pgrp), 0);
      },
      getpgrp: () => call(nr.getpgid, 0, 0, 0, 0),
      newProcessGroup: () => call(nr.setpgid, 0, 0, 0, 0),
      sigaction: (sig, act, old) => call(nr.rt_sigaction, sig, act ? at(act) : 0, old ? at(old) : 0, nr.KERNEL_SIGSET_BYTES),
      sigprocmask: (how, set, old) => call(nr.rt_sigprocmask, how, set ? at(set) : 0, old ? at(old) : 0, nr.KERNEL_SIGSET_BYTES),
      clearCloseOnExec: (fd) => call(nr.ioctl, fd, platform.job.FIONCLEX, 0, 0),
    },
  };
}

/** Elsewhere calls go by name: those on the lock path bound at start-up, the rest on first use. */
function namedCalls(): { calls: Calls; errno: () => Pointer } {
  const hot = load({
    open: { args: [ptr, i32, i32], returns: i32 },
    close: { args: [i32], returns: i32 },
    pread: { args: [i32, ptr, u64, i64], returns: i64_fast },
    pwrite: { args: [i32, ptr, u64, i64], returns: i64_fast },
    ftruncate: { args: [i32, i64], returns: i32 },
    flock: { args: [i32, i32], returns: i32 },
    unlink: { args: [ptr], returns: i32 },
    access: { args: [ptr, i32], returns: i32 },
    getuid: { args: [], returns: i32 },
    gethostname: { args: [ptr, u64], returns: i32 },
    [platform.errnoFn]: { args: [], returns: ptr },
    [platform.fstatFn!]: { args: [i32, ptr], returns: i32 },
    [platform.lstatFn!]: { args: [ptr, ptr], returns: i32 },
  });
  let coldBound: Record<string, Fn> | undefined;
  const cold = () =>
    (coldBound ??= load({
      read: { args: [i32, ptr, u64], returns: i64_fast },
      mkdir: { args: [ptr, i32], returns: i32 },
      chmod: { args: [ptr, i32], returns: i32 },
      fchmod: { args: [i32, i32], returns: i32 },
      isatty: { args: [i32], returns: i32 },
      kill: { args: [i32, i32], returns: i32 },
      getppid: { args: [], returns: i32 },
      poll: { args: [ptr, u64, i32], returns: i32 },
      waitpid: { args: [i32, ptr, i32], returns: i32 },
      tcgetpgrp: { args: [i32], returns: i32 },
      tcsetpgrp: { args: [i32, i32], returns: i32 },
      getpgrp: { args: [], returns: i32 },
      setpgid: { args: [i32, i32], returns: i32 },
      [platform.sigactionFn ?? "sigaction"]: { args: [i32, ptr, ptr], returns: i32 },
      [platform.sigprocmaskFn ?? "sigprocmask"]: { args: [i32, ptr, ptr], returns: i32 },
      // ioctl is variadic: FIONCLEX takes no third argument, so only the fixed ones are passed.
      ioctl: { args: [i32, u64], returns: i32 },
    }));
  return {
    errno: hot[platform.errnoFn] as () => Pointer,
    calls: {
      open: (path, flags, mode) => hot.open!(path, flags, mode),
      close: (fd) => hot.close!(fd),
      read: (fd, buf) => cold().read!(fd, buf, buf.byteLength),
      pread: (fd, buf, offset) => hot.pread!(fd, buf, buf.byteLength, offset),
      pwrite: (fd, buf, offset) => hot.pwrite!(fd, buf, buf.byteLength, offset),
      ftruncate: (fd, length) => hot.ftruncate!(fd, length),
      flock: (fd, op) => hot.flock!(fd, op),
      unlink: (path) => hot.unlink!(path),
      access: (path, mode) => hot.access!(path, mode),
      mkdir: (path, mode) => cold().mkdir!(path, mode),
      chmod: (path, mode) => cold().chmod!(path, mode),
      fchmod: (fd, mode) => cold().fchmod!(fd, mode),
      fstat: (fd, buf) => hot[platform.fstatFn!]!(fd, buf),
      lstat: (path, buf) => hot[platform.lstatFn!]!(path, buf),
      kill: (pid, signal) => cold().kill!(pid, signal),
      getppid: () => cold().getppid!(),
      getuid: () => hot.getuid!(),
      isatty: (fd) => cold().isatty!(fd),
      hostname: (buf) => hot.gethostname!(buf, buf.byteLength),
      poll: (set, count, timeoutMs) => cold().poll!(set, count, timeoutMs),
      wait: (pid, status, options) => cold().waitpid!(pid, status, options),
      tcgetpgrp: (fd) => cold().tcgetpgrp!(fd),
      tcsetpgrp: (fd, pgid) => cold().tcsetpgrp!(fd, pgid),
      getpgrp: () => cold().getpgrp!(),
      newProcessGroup: () => cold().setpgid!(0, 0),
      sigaction: (sig, act, old) => cold()[platform.sigactionFn ?? "sigaction"]!(sig, act, old),
      sigprocmask: (how, set, old) => cold()[platform.sigprocmaskFn ?? "sigprocmask"]!(how, set, old),
      clearCloseOnExec: (fd) => cold().ioctl!(fd, platform.job.FIONCLEX),
    },
  };
}

const ffi = (platform.SYS && nativeFFI) || ffiModule();
const bound: { calls: Calls; errno: () => Pointer; syscall?: SyscallFn } = platform.SYS ? linuxCalls(platform.SYS, ffi) : namedCalls();
const sys = bound.calls;
/** Linux only: the calls that exist nowhere else (pidfd, inotify) */
const syscall = bound.syscall;

// What only some calls need, and no system has under the same name: bound on first use.
let extraBound: Record<string, Fn> | undefined;
const extras = (): Record<string, Fn> =>
  (extraBound ??= load({
    strerror: { args: [i32], returns: cstring },
    sysconf: { args: [i32], returns: i64_fast },
    openlog: { args: [ptr, i32, i32], returns: none },
    syslog: { args: [i32, ptr], returns: none },
    siginterrupt: { args: [i32, i32], returns: i32 },
    setitimer: { args: [i32, ptr, ptr], returns: i32 },
    ...(platform.os !== "linux" && { sysctl: { args: [ptr, u32, ptr, ptr, ptr, u64], returns: i32 } }),
    ...(platform.kevent && { kqueue: { args: [], returns: i32 }, kevent: { args: [i32, ptr, i32, ptr, i32, ptr], returns: i32 } }),
  }));

const encoder = new TextEncoder();
const cstr = (s: string): Uint8Array => encoder.encode(s + "\0");
let textDecoder: TextDecoder | undefined;
const decoder = { decode: (bytes: Uint8Array) => (textDecoder ??= new TextDecoder()).decode(bytes) };

// errno has one address per thread, and every call here is made on the JavaScript thread.
let errnoAt: Pointer | undefined;

/** The errno of the call that just failed, as a negative number. */
function fail(): number {
  errnoAt ??= bound.errno();
  return -ffi.read.i32(errnoAt, 0);
}

const check = (r: number): number => (r < 0 ? fail() : r);

export const E = platform.E;
export const O = platform.O;

export function errnoName(errno: number): ErrnoName | undefined {
  const n = Math.abs(errno);
  return (Object.keys(platform.E) as ErrnoName[]).find((k) => platform.E[k] === n);
}

export function strerror(errno: number): string {
  return String(extras().strerror!(Math.abs(errno)) as CString);
}

export function open(path: string, flags: number, mode = 0o666): number {
  return check(sys.open(cstr(path), flags, mode));
}

export function close(fd: number): void {
  sys.close(fd);
}

export function flock(fd: number, op: number): number {
  return check(sys.flock(fd, op));
}

/** The interval after which a missed alarm is sent again, in microseconds. */
const ALARM_REPEAT_US = 50_000;
let alarmReady = false;

/**
 * SIGALRM gets the runtime's own handler (process.on), made to interrupt rather than
 * restart system calls (siginterrupt): a blocked flock(2) then returns EINTR. The handler
 * is the process's, whichever thread the signal is sent to.
 */
function alarmInterrupts(): void {
  if (alarmReady) return;
  process.on("SIGALRM", () => {});
  extras().siginterrupt!(platform.signals().SIGALRM!, 1);
  alarmReady = true;
}

/**
 * Arms ITIMER_REAL to interrupt a blocking call after `ms` milliseconds (then every
 * ALARM_REPEAT_US, in case the first one landed before the call began); 0 disarms it.
 */
function armAlarm(ms: number): void {
  alarmInterrupts();
  const us = Math.max(1, Math.round(ms * 1000));
  // struct itimerval { struct timeval it_interval, it_value; }, each { tv_sec; tv_usec } as longs.
  const spec = ms > 0 ? [0, ALARM_REPEAT_US, Math.floor(us / 1e6), us % 1e6] : [0, 0, 0, 0];
  extras().setitimer!(0, new BigInt64Array(spec.map(BigInt)), null);
}

/**
 * flock(2) that may block, in the kernel's queue of waiters for the file (first come, first
 * served), for at most `timeoutMs` milliseconds (Infinity: as long as it takes). Returns 0
 * when locked, -EINTR when the time ran out or a signal came (the caller decides whether
 * to try again), or another negative errno.
 */
export function flockWait(fd: number, op: number, timeoutMs: number): number {
  if (timeoutMs <= 0) return -platform.E.EINTR;
  if (timeoutMs === Infinity || interruptedByCaller) return check(sys.flock(fd, op));
  armAlarm(timeoutMs);
  try {
    return check(sys.flock(fd, op));
  } finally {
    armAlarm(0);
  }
}

// ITIMER_REAL is one per process, and its SIGALRM may land on any thread: a wait off the
// main thread is interrupted by whoever started it instead (interruptThread).
let interruptedByCaller = false;

/** Can one thread interrupt another's blocking call (threadId, interruptThread)? Linux only. */
export const threadsInterruptible = (): boolean => !!(platform.SYS && syscall);

/**
 * From now on flockWait() in this thread (this JavaScript realm: a Worker has its own)
 * arms no timer: the thread that started the wait sends interruptThread() at its deadline,
 * and again until the wait has ended. Linux only (returns false elsewhere).
 */
export function waitsInterruptedByCaller(): boolean {
  if (!platform.SYS || !syscall) return false;
  interruptedByCaller = true;
  return true;
}

/** The calling thread's kernel ID (gettid(2)), for interruptThread(); -ENOSYS off Linux. */
export function threadId(): number {
  if (!platform.SYS || !syscall) return -platform.E.ENOSYS;
  return syscall(platform.SYS.gettid, 0, 0, 0, 0);
}

/**
 * Interrupts the blocking call that thread `tid` of this process is making (tgkill(2) with
 * SIGALRM, whose handler does not restart calls): a blocked flock(2) returns EINTR. 0, or a
 * negative errno (ESRCH: the thread has ended).
 */
export function interruptThread(tid: number): number {
  if (!platform.SYS || !syscall) return -platform.E.ENOSYS;
  alarmInterrupts();
  return check(syscall(platform.SYS.tgkill, process.pid, tid, platform.signals().SIGALRM!, 0));
}

export function pread(fd: number, buf: Uint8Array, offset = 0): number {
  return check(sys.pread(fd, buf, offset));
}

/** Reads whatever is there now; for non-blocking descriptors. */
export function readSome(fd: number, buf: Uint8Array): number {
  return check(sys.read(fd, buf));
}

/**
 * The first `max` bytes of the file at `path` (all of it when shorter), read without
 * node:fs, which a process pays for loading (bench/TUNING.md); a negative errno when it
 * cannot be opened.
 */
export function readFileBytes(path: string, max: number): Uint8Array | number {
  const fd = open(path, platform.O.RDONLY | platform.O.CLOEXEC);
  if (fd < 0) return fd;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const buf = new Uint8Array(4096);
    for (let n; total < max && (n = readSome(fd, buf)) > 0; total += n) chunks.push(buf.slice(0, n));
  } finally {
    close(fd);
  }
  // Loops rather than reduce: the holder for `waitlock NAME` reads its owner's command line on start-up.
  const all = new Uint8Array(Math.min(total, max));
  let off = 0;
  for (const c of chunks) {
    if (off >= all.length) break;
    all.set(c.subarray(0, all.length - off), off);
    off += c.length;
  }
  return all;
}

export function pwrite(fd: number, buf: Uint8Array, offset = 0): number {
  return check(sys.pwrite(fd, buf, offset));
}

export function ftruncate(fd: number, length: number): number {
  return check(sys.ftruncate(fd, length));
}

export function unlink(path: string): number {
  return check(sys.unlink(cstr(path)));
}

export function mkdir(path: string, mode: number): number {
  return check(sys.mkdir(cstr(path), mode));
}

export function chmod(path: string, mode: number): number {
  return check(sys.chmod(cstr(path), mode));
}

export function fchmod(fd: number, mode: number): number {
  return check(sys.fchmod(fd, mode));
}

/** access(2) with W_OK|X_OK: may this process create files in the directory? 0, or a negative errno (EACCES, EROFS). */
export function canWriteDir(path: string): number {
  return check(sys.access(cstr(path), 2 | 1));
}

export function isatty(fd: number): boolean {
  return sys.isatty(fd) === 1;
}

export function kill(pid: number, signal: number): number {
  return check(sys.kill(pid, signal));
}

export function getppid(): number {
  return sys.getppid();
}

export function getuid(): number {
  return sys.getuid();
}

export function hostname(): string {
  const buf = new Uint8Array(256);
  if (sys.hostname(buf) !== 0) return "";
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

export function onlineCpus(): number {
  const n = Number(extras().sysconf!(platform.SC_NPROCESSORS_ONLN));
  if (n > 0) return n;
  const hw = platform.hwNcpu ? sysctl(platform.hwNcpu) : -1;
  return typeof hw !== "number" && hw.byteLength >= 4 ? Math.max(1, new DataView(hw.buffer, hw.byteOffset).getInt32(0, true)) : 1;
}

let ticks: number | undefined;

/** Clock ticks per second, the unit of /proc's process times (Linux). */
export function clockTicksPerSecond(): number {
  ticks ??= platform.SC_CLK_TCK === undefined ? 100 : Number(extras().sysconf!(platform.SC_CLK_TCK)) || 100;
  return ticks;
}

/** sysctl(3) by MIB: the value's bytes, or a negative errno. */
export function sysctl(mib: number[]): Uint8Array | number {
  if (platform.os === "linux") return -platform.E.ENOSYS;
  const name = new Int32Array(mib);
  const length = new BigUint64Array(1);
  let r = check(extras().sysctl!(name, mib.length, null, length, null, 0) as number);
  if (r < 0) return r;
  const buf = new Uint8Array(Number(length[0]));
  r = check(extras().sysctl!(name, mib.length, buf, length, null, 0) as number);
  return r < 0 ? r : buf.subarray(0, Number(length[0]));
}

/** Where a buffer lives, for layouts that answer with pointers into it (OpenBSD's argv). */
export const addressOfBuffer = (buf: Uint8Array): number => ffi.ptr(buf);

/**
 * A kqueue descriptor that reports when `pid` exits (EVFILT_PROC, NOTE_EXIT), or a negative
 * errno (ESRCH: already gone). kqueues are not inherited: the waiting process makes its own.
 */
export function processExitQueue(pid: number): number {
  const layout = platform.kevent;
  if (!layout) return -platform.E.ENOSYS;
  const kq = check(extras().kqueue!() as number);
  if (kq < 0) return kq;
  const change = new Uint8Array(layout.size);
  const v = new DataView(change.buffer);
  v.setBigUint64(0, BigInt(pid), true);
  v.setInt16(layout.filter, layout.EVFILT_PROC, true);
  v.setUint16(layout.flags, layout.EV_ADD | layout.EV_ONESHOT, true);
  v.setUint32(layout.fflags, layout.NOTE_EXIT, true);
  const r = check(extras().kevent!(kq, change, 1, null, 0, null) as number);
  if (r < 0) {
    close(kq);
    return r;
  }
  return kq;
}

/** Blocks until the queue reports; 1 when it did, -EINTR when a signal came first. */
export function waitQueue(kq: number): number {
  return check(extras().kevent!(kq, null, 0, new Uint8Array(platform.kevent!.size), 1, null) as number);
}

export function signalNumber(name: string): number | undefined {
  return platform.signals()[name];
}

export interface Stat {
  dev: number;
  ino: number;
  nlink: number;
  mode: number;
  uid: number;
  size: number;
}

const statBuf = new Uint8Array(platform.stat.size);
const statView = new DataView(statBuf.buffer);

function field(f: Field): number {
  switch (f.size) {
    case 2:
      return statView.getUint16(f.off, true);
    case 4:
      return statView.getUint32(f.off, true);
    case 8:
      // Two halves rather than getBigUint64: a BigInt is one more kind of GC cell to set up.
      return statView.getUint32(f.off, true) + statView.getUint32(f.off + 4, true) * 2 ** 32;
  }
}

function decodeStat(): Stat {
  const layout = platform.stat;
  return { dev: field(layout.dev), ino: field(layout.ino), nlink: field(layout.nlink), mode: field(layout.mode), uid: field(layout.uid), size: field(layout.fileSize) };
}

export function fstat(fd: number): Stat | number {
  const r = sys.fstat(fd, statBuf);
  return r < 0 ? fail() : decodeStat();
}

export function lstat(path: string): Stat | number {
  const r = sys.lstat(cstr(path), statBuf);
  return r < 0 ? fail() : decodeStat();
}

/**
 * Waits until one of `fds` is readable or `timeoutMs` passes (-1 = forever).
 * Returns the indexes that are ready, or a negative errno (EINTR when a signal came).
 */
export function pollReadable(fds: number[], timeoutMs: number): number[] | number {
  const set = new Int32Array(fds.length * 2);
  for (let i = 0; i < fds.length; i++) {
    set[i * 2] = fds[i]!;
    set[i * 2 + 1] = POLLIN;
  }
  const r = sys.poll(set, fds.length, Math.max(-1, Math.floor(timeoutMs)));
  if (r < 0) return fail();
  const ready: number[] = [];
  // struct pollfd { int fd; short events; short revents; }: revents is the high half.
  for (let i = 0; i < fds.length; i++) if (set[i * 2 + 1]! >>> 16 !== 0) ready.push(i);
  return ready;
}

/** A descriptor that becomes readable when `pid` exits; negative errno when unsupported. */
export function pidfdOpen(pid: number): number {
  if (!platform.SYS || !syscall) return -platform.E.ENOSYS;
  return check(syscall(platform.SYS.pidfd_open, pid, 0, 0, 0));
}

export function inotifyInit(): number {
  if (!platform.IN || !platform.SYS || !syscall) return -platform.E.ENOSYS;
  return check(syscall(platform.SYS.inotify_init1, platform.IN.NONBLOCK | platform.IN.CLOEXEC, 0, 0, 0));
}

export function inotifyAddWatch(ifd: number, path: string, mask: number): number {
  const name = cstr(path);
  return check(syscall!(platform.SYS!.inotify_add_watch, ifd, ffi.ptr(name), mask, 0));
}

export function inotifyRmWatch(ifd: number, wd: number): void {
  syscall!(platform.SYS!.inotify_rm_watch, ifd, wd, 0, 0);
}

export function openlog(ident: Uint8Array, option: number, facility: number): void {
  extras().openlog!(ident, option, facility);
}

export function syslog(priority: number, message: string): void {
  // The message is the format string: escape conversions so that nothing is read from varargs.
  extras().syslog!(priority, cstr(message.replaceAll("%", "%%")));
}

// Starting the command of --exec, and job control over it.

let spawnFns: Record<string, Fn> | undefined;
/**
 * posix_spawn(3), what finds libc's `environ` (platform.environ), and where the attributes
 * cannot be written in place (see SpawnAttrLayout) the functions that set them, bound on
 * first use (only --exec starts a command, and prepares it before it waits for the lock).
 * (Bun compiles a trampoline per symbol.)
 */
const bindSpawn = (): Record<string, Fn> =>
  (spawnFns ??= load(
    {
      posix_spawn: { args: [i64_fast, i64_fast, i64_fast, i64_fast, i64_fast, i64_fast], returns: i32 },
      ...(platform.environ === "_NSGetEnviron" ? { _NSGetEnviron: { args: [], returns: i64_fast } } : { dlsym: { args: [i64_fast, i64_fast], returns: i64_fast } }),
      ...(!platform.spawn.attr && {
        posix_spawnattr_init: { args: [i64_fast], returns: i32 },
        posix_spawnattr_setflags: { args: [i64_fast, i64_fast], returns: i32 },
        posix_spawnattr_setpgroup: { args: [i64_fast, i64_fast], returns: i32 },
        posix_spawnattr_setsigdefault: { args: [i64_fast, i64_fast], returns: i32 },
        posix_spawnattr_setsigmask: { args: [i64_fast, i64_fast], returns: i32 },
        posix_spawnattr_destroy: { args: [i64_fast], returns: i32 },
      }),
    },
    ffi,
  ));

/**
 * A posix_spawnattr_t as posix_spawnattr_init and the setters of `flags`, process group 0
 * (the child's own), `sigdefault` and `sigmask` (libc's sigset_t) leave it, written into
 * `attr` (zeroed, at least `layout.bytes` long) by `layout`.
 */
export function writeSpawnAttr(attr: Uint8Array, layout: SpawnAttrLayout, flags: number, sigdefault: Uint8Array, sigmask: Uint8Array): void {
  // Little-endian, byte by byte: asking a small typed array for its `.buffer` (a DataView)
  // moves its bytes, and a pointer taken to them before would point to the old ones.
  attr[layout.flags] = flags & 0xff;
  attr[layout.flags + 1] = flags >> 8;
  attr.set(sigdefault, layout.sigdefault);
  attr.set(sigmask, layout.sigmask);
}

/** Pointer `index` of a C array of pointers kept as 32-bit halves (no BigInt) is `address`. */
function setPointer(pointers: Uint32Array, index: number, address: number): void {
  const low = address % 4294967296;
  pointers[index * 2] = low;
  pointers[index * 2 + 1] = (address - low) / 4294967296;
}

/**
 * `strings` as C strings in one buffer, and a NULL-terminated array of pointers to them
 * (argv) as 32-bit halves. The buffer must stay referenced while libc reads it.
 */
function stringArray(strings: string[]): { bytes: Uint8Array; pointers: Uint32Array } {
  const pointers = new Uint32Array(strings.length * 2 + 2);
  return { bytes: pointStrings(strings, pointers, 0), pointers };
}

/**
 * Encodes `strings` as C strings in one buffer, which it returns, and points `pointers`
 * (32-bit halves) at them from pointer number `first` on. (A C string holds no NUL, so
 * joining on NUL and encoding once is enough.)
 */
function pointStrings(strings: string[], pointers: Uint32Array, first: number): Uint8Array {
  const bytes = encoder.encode(strings.join("\0") + "\0");
  const base = ffi.ptr(bytes);
  for (let i = 0, at = 0; i < strings.length; i++, at = bytes.indexOf(0, at) + 1) setPointer(pointers, first + i, base + at);
  return bytes;
}

/** Every system Bun runs on is 64-bit. */
const POINTER_BYTES = 8;

/** Does the C string at `address` start with `prefix`? (Its NUL differs from every byte of a prefix.) */
function startsWith(address: number, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (ffi.read.u8(address, i) !== prefix[i]) return false;
  return true;
}

let environAt: number | undefined;

/**
 * This process's environment as libc holds it (`environ`: what the caller passed, which the
 * runtime reads for process.env and leaves as it is) without the variables named `unset`, as
 * a NULL-terminated array of pointers (32-bit halves) to libc's own strings, with room for
 * `room` more before the NULL; and how many it holds. The strings go to the command byte for
 * byte, as the caller gave them (process.env drops or rewrites some: a duplicate name, an
 * entry without '=', bytes that are not UTF-8).
 */
function environWithout(unset: string[], room: number): { pointers: Uint32Array; count: number } {
  const fns = bindSpawn();
  environAt ??= (platform.environ === "_NSGetEnviron" ? fns._NSGetEnviron!() : fns.dlsym!(platform.environ.RTLD_DEFAULT, ffi.ptr(cstr("environ")))) as number;
  const env = ffi.read.ptr(environAt, 0);
  let total = 0;
  while (env !== 0 && ffi.read.ptr(env, total * POINTER_BYTES) !== 0) total++;
  const pointers = new Uint32Array((total + room) * 2 + 2);
  if (unset.length > 0) return { pointers, count: keptEntries(env, total, unset, pointers) };
  // Copied whole when nothing is to be dropped: a look at an entry is a call into Bun per
  // byte (bench/TUNING.md, thirteenth round).
  if (total > 0) pointers.set(new Uint32Array(ffi.toArrayBuffer(env, 0, total * POINTER_BYTES)));
  return { pointers, count: total };
}

/** Points `pointers` at the `total` entries of the environment array `env` but those of the variables `unset`; returns how many. */
function keptEntries(env: number, total: number, unset: string[], pointers: Uint32Array): number {
  const prefixes: Uint8Array[] = [];
  for (const name of unset) prefixes.push(encoder.encode(`${name}=`));
  let count = 0;
  for (let i = 0; i < total; i++) {
    const entry = ffi.read.ptr(env, i * POINTER_BYTES);
    let dropped = false;
    for (let j = 0; j < prefixes.length && !dropped; j++) dropped = startsWith(entry, prefixes[j]!);
    if (!dropped) setPointer(pointers, count++, entry);
  }
  return count;
}

/** How many variables the spawn of prepareSpawnInGroup may add to the environment. */
const MORE_ENV = 4;

/** libc's sigset_t holding the signals numbered `signals`: bit (n - 1), counted from the first byte. */
function signalSet(signals: number[]): Uint8Array {
  const set = new Uint8Array(platform.spawn.sigsetBytes);
  for (const n of signals) set[(n - 1) >> 3]! |= 1 << ((n - 1) & 7);
  return set;
}

/** A signal mask as `signalMask` returns it. */
export type SignalMask = Uint8Array;

/**
 * posix_spawn(3) of the file `path` (not searched in PATH) with `argv` and this process's
 * environment without the variables named `unset` (see environWithout: name only those
 * that may be set, as each costs a look at every variable),
 * as the leader of a new process group (POSIX_SPAWN_SETPGROUP), with the signals numbered
 * `defaults` at their default action (POSIX_SPAWN_SETSIGDEF) and the signal mask `mask`
 * (POSIX_SPAWN_SETSIGMASK). Everything else is this process's: every descriptor
 * without close-on-exec, ignored signals, resource limits, umask and working directory.
 * Made ready here (the strings encoded, the attributes written); the spawn happens when the
 * returned function is called, once, with `moreEnv` (at most 4 KEY=VALUE) added. That
 * returns the child's PID, or a negative errno that libc reports once the exec was tried
 * (ENOENT, EACCES, ENOEXEC, EAGAIN ...); on Linux the child goes first then (sched_yield(2)).
 */
export function prepareSpawnInGroup(path: string, argv: string[], unset: string[], defaults: number[], mask: SignalMask): (moreEnv: string[]) => number {
  const fns = bindSpawn();
  // posix_spawnattr_t is a struct on Linux and NetBSD, a pointer elsewhere: room for either.
  const attr = new Uint8Array(512);
  const a = ffi.ptr(attr);
  const sigdefault = signalSet(defaults);
  // The kernel's mask is the first bytes of libc's sigset_t, bit for bit.
  const sigmask = new Uint8Array(platform.spawn.sigsetBytes);
  sigmask.set(mask.subarray(0, sigmask.byteLength));
  const file = cstr(path);
  const args = stringArray(argv);
  const vars = environWithout(unset, MORE_ENV);
  const pid = new Int32Array(1);
  const flags = platform.spawn.SETPGROUP | platform.spawn.SETSIGDEF | platform.spawn.SETSIGMASK;
  if (platform.spawn.attr) writeSpawnAttr(attr, platform.spawn.attr, flags, sigdefault, sigmask);
  return (moreEnv) => {
    if (moreEnv.length > MORE_ENV) throw new Error(`more than ${MORE_ENV} variables added to a prepared environment`);
    const more = pointStrings(moreEnv, vars.pointers, vars.count);
    const spawn = () => fns.posix_spawn!(ffi.ptr(pid), ffi.ptr(file), 0, a, ffi.ptr(args.pointers), ffi.ptr(vars.pointers)) as number;
    let r: number;
    if (platform.spawn.attr) r = spawn();
    else {
      r = fns.posix_spawnattr_init!(a) as number;
      if (r !== 0) return -r;
      r =
        (fns.posix_spawnattr_setflags!(a, flags) as number) ||
        (fns.posix_spawnattr_setpgroup!(a, 0) as number) ||
        (fns.posix_spawnattr_setsigdefault!(a, ffi.ptr(sigdefault)) as number) ||
        (fns.posix_spawnattr_setsigmask!(a, ffi.ptr(sigmask)) as number) ||
        spawn();
      fns.posix_spawnattr_destroy!(a);
    }
    // posix_spawn returns once the child's exec has begun; our wake-up most often takes the
    // CPU from it before its exec is done, and it would wait for all we do next (traced: 25
    // of 40 handoffs; flock(1)'s fork, 2-5): let it go first.
    if (r === 0 && platform.SYS && syscall) syscall(platform.SYS.sched_yield, 0, 0, 0, 0);
    // What the pointers point into stays referenced until libc is done with it.
    void [file, args.bytes, more];
    return r === 0 ? pid[0]! : -r;
  };
}

/** What wait4/waitpid reported about a child. */
export type ChildState = { exited: number } | { killed: number } | { stopped: number };

let waitStatus: Int32Array | undefined;

/**
 * Has child `pid` exited, been killed or stopped (wait4 with WNOHANG | WUNTRACED)? null when
 * nothing changed or it cannot be waited for (ECHILD).
 */
export function waitChild(pid: number): ChildState | null {
  const status = (waitStatus ??= new Int32Array(1));
  if (sys.wait(pid, status, WAIT.NOHANG | WAIT.UNTRACED) <= 0) return null;
  // The status word, as the W* macros read it on every system here.
  const w = status[0]!;
  if ((w & 0xff) === 0x7f) return { stopped: (w >> 8) & 0xff };
  return (w & 0x7f) === 0 ? { exited: (w >> 8) & 0xff } : { killed: w & 0x7f };
}

/** The foreground process group of the terminal at `fd`; -1 when `fd` is not this process's controlling terminal. */
export function foregroundGroup(fd: number): number {
  return sys.tcgetpgrp(fd);
}

/** The controlling terminal opened as /dev/tty (close-on-exec), or -1 when there is none. */
export function openControllingTerminal(): number {
  const fd = sys.open(cstr("/dev/tty"), platform.O.RDWR | platform.O.CLOEXEC | platform.O.NONBLOCK, 0);
  return fd >= 0 ? fd : -1;
}

/**
 * Makes `pgid` the terminal's foreground process group. SIGTTOU is blocked meanwhile: a
 * process outside the foreground group may hand the terminal on without being stopped.
 */
export function setForegroundGroup(fd: number, pgid: number): number {
  const bytes = platform.SYS ? platform.SYS.KERNEL_SIGSET_BYTES : platform.spawn.sigsetBytes;
  const block = new Uint8Array(bytes);
  const ttou = platform.signals().SIGTTOU! - 1;
  block[ttou >> 3] = 1 << (ttou & 7);
  const old = new Uint8Array(bytes);
  sys.sigprocmask(platform.job.SIG_BLOCK, block, old);
  const r = check(sys.tcsetpgrp(fd, pgid));
  sys.sigprocmask(platform.job.SIG_SETMASK, old, null);
  return r;
}

export function processGroup(): number {
  return sys.getpgrp();
}

/**
 * Makes the calling process lead a process group of its own (setpgid(0, 0)), so that a
 * terminal's ^C for the group it was in no longer reaches it. 0, or -errno (EPERM: it
 * leads a session).
 */
export function leaveProcessGroup(): number {
  return check(sys.newProcessGroup());
}

/** The signal mask of the calling (JavaScript) thread now (empty when it cannot be read). */
export function signalMask(): SignalMask {
  const mask = new Uint8Array(platform.SYS ? platform.SYS.KERNEL_SIGSET_BYTES : platform.spawn.sigsetBytes);
  sys.sigprocmask(platform.job.SIG_BLOCK, null, mask);
  return mask;
}

// Larger than struct sigaction on every system here; the handler comes first in each.
const SIGACTION_BYTES = 256;
const SIG_IGN = 1;
let sigactionOld: Uint32Array | undefined;

/** Is signal `n` ignored (SIG_IGN) in this process now? */
export function signalIgnored(n: number): boolean {
  // The kernel (or libc) writes the whole old action: no need to clear it first.
  const old = (sigactionOld ??= new Uint32Array(SIGACTION_BYTES / 4));
  return sys.sigaction(n, null, new Uint8Array(old.buffer)) === 0 && old[0] === SIG_IGN && old[1] === 0;
}

/** Sets signal `n` to SIG_IGN, which a command started later inherits. */
export function ignoreSignal(n: number): void {
  const act = new Uint8Array(SIGACTION_BYTES);
  act[0] = SIG_IGN;
  sys.sigaction(n, act, null);
}

/** Lets descriptor `fd` survive exec (clears FD_CLOEXEC); 0 or a negative errno. */
export function clearCloseOnExec(fd: number): number {
  return check(sys.clearCloseOnExec(fd));
}

/**
 * Linux: calls `each` for every entry of the open directory `dir`, read with getdents64 in
 * `bytes`-sized batches, with the batch and the offset of the entry's NUL-terminated name
 * in it. 0, or a negative errno.
 */
function eachEntry(dir: number, bytes: number, each: (buf: Uint8Array, name: number) => void): number {
  const buf = new Uint8Array(bytes);
  const view = new DataView(buf.buffer);
  for (;;) {
    const n = check(syscall!(platform.SYS!.getdents64, dir, ffi.ptr(buf), buf.byteLength, 0));
    if (n <= 0) return n;
    // struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
    for (let off = 0; off < n; off += view.getUint16(off + 16, true)) each(buf, off + 19);
  }
}

/**
 * Linux: this process's open descriptors, from /proc/self/fd (getdents64), but those whose
 * link there starts with `except` (a descriptor closed meanwhile is left out too); a negative
 * errno elsewhere or on failure.
 */
export function openDescriptors(except?: string): number[] | number {
  if (!platform.SYS || !syscall) return -platform.E.ENOSYS;
  const dir = open("/proc/self/fd", O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  if (dir < 0) return dir;
  const unwanted = except === undefined ? undefined : encoder.encode(except);
  const link = new Uint8Array(unwanted?.byteLength ?? 0);
  const fds: number[] = [];
  const r = eachEntry(dir, 4096, (buf, name) => {
    // The names are decimal numbers, besides "." and "..".
    let fd = 0;
    let at = name;
    for (; buf[at]! >= 0x30 && buf[at]! <= 0x39; at++) fd = fd * 10 + buf[at]! - 0x30;
    if (at === name || fd === dir) return;
    // The link read by the name in `buf` itself, relative to `dir`: no path to build.
    if (unwanted && !linkDiffers(dir, ffi.ptr(buf) + name, link, unwanted)) return;
    fds.push(fd);
  });
  close(dir);
  return r < 0 ? r : fds;
}

/** Does the link at `name` (a C string's address) in directory `dir` exist and not start with `prefix`? `link` is room for as many bytes. */
function linkDiffers(dir: number, name: number, link: Uint8Array, prefix: Uint8Array): boolean {
  const n = syscall!(platform.SYS!.readlinkat, dir, name, ffi.ptr(link), link.byteLength);
  if (n < 0) return false;
  if (n < prefix.byteLength) return true;
  for (let i = 0; i < n; i++) if (link[i] !== prefix[i]) return true;
  return false;
}

/**
 * Linux: the names in the directory `path` that start with `prefix`, read with getdents64
 * (node:fs would cost the process its loading: bench/TUNING.md); a negative errno on
 * failure, ENOSYS elsewhere.
 */
export function directoryNames(path: string, prefix: string): string[] | number {
  if (!platform.SYS || !syscall) return -platform.E.ENOSYS;
  const dir = open(path, O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  if (dir < 0) return dir;
  const wanted = encoder.encode(prefix);
  const names: string[] = [];
  const r = eachEntry(dir, 32768, (buf, name) => {
    for (let i = 0; i < wanted.length; i++) if (buf[name + i] !== wanted[i]) return;
    names.push(decoder.decode(buf.subarray(name, buf.indexOf(0, name))));
  });
  close(dir);
  return r < 0 ? r : names;
}

let linkBuf: Uint8Array | undefined;

/** Linux: the first `max` bytes of where the symbolic link `path` points (as UTF-8), or a negative errno. */
export function readLink(path: string, max = 4096): string | number {
  if (!platform.SYS || !syscall) return -platform.E.ENOSYS;
  const buf = linkBuf && linkBuf.byteLength >= max ? linkBuf : (linkBuf = new Uint8Array(max));
  const n = check(syscall(platform.SYS.readlinkat, platform.SYS.AT_FDCWD, ffi.ptr(cstr(path)), ffi.ptr(buf), max));
  return n < 0 ? n : decoder.decode(buf.subarray(0, n));
}

const RLIM_HALF = 4294967296;

/**
 * Linux: RLIMIT_NOFILE of process `pid` (0: this one) as { soft, hard } (Infinity:
 * unlimited), or a negative errno (EPERM: another user's process).
 */
export function fileLimit(pid = 0): { soft: number; hard: number } | number {
  if (!platform.SYS || !syscall) return -platform.E.ENOSYS;
  const old = new Uint32Array(4);
  const r = syscall(platform.SYS.prlimit64, pid, platform.SYS.RLIMIT_NOFILE, 0, ffi.ptr(old));
  if (r < 0) return -1;
  const value = (lo: number, hi: number) => (lo === 0xffffffff && hi === 0xffffffff ? Infinity : lo + hi * RLIM_HALF);
  return { soft: value(old[0]!, old[1]!), hard: value(old[2]!, old[3]!) };
}

/** Linux: sets this process's soft RLIMIT_NOFILE to `soft`, the hard one to `hard`; 0 or a negative errno. */
export function setFileLimit(soft: number, hard: number): number {
  const limit = new Uint32Array(4);
  const put = (i: number, v: number) => {
    limit[i] = v === Infinity ? 0xffffffff : v % RLIM_HALF;
    limit[i + 1] = v === Infinity ? 0xffffffff : (v - (v % RLIM_HALF)) / RLIM_HALF;
  };
  put(0, soft);
  put(2, hard);
  return platform.SYS && syscall ? check(syscall(platform.SYS.prlimit64, 0, platform.SYS.RLIMIT_NOFILE, ffi.ptr(limit), 0)) : -platform.E.ENOSYS;
}
