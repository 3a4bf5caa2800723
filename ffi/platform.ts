// Every number that differs between kernels lives here and nowhere else.
// Values come from the platforms' public headers (Linux uapi + glibc/musl, macOS xnu,
// FreeBSD, OpenBSD, NetBSD); test/platform.test.ts pins them.

export interface Field {
  off: number;
  size: 2 | 4 | 8;
}

export interface StatLayout {
  /** sizeof(struct stat) */
  size: number;
  dev: Field;
  ino: Field;
  nlink: Field;
  mode: Field;
  uid: Field;
  /** st_size */
  fileSize: Field;
}

export interface Platform {
  os: string;
  libc: string[];
  errnoFn: string;
  /** the stat symbols, where calls go by name (not on Linux: see SYS) */
  fstatFn?: string;
  lstatFn?: string;
  stat: StatLayout;
  O: { RDONLY: number; WRONLY: number; RDWR: number; CREAT: number; EXCL: number; NOFOLLOW: number; CLOEXEC: number; DIRECTORY: number; NONBLOCK: number };
  E: Record<ErrnoName, number>;
  /** signal numbers by name (node:os has them too, but importing it costs start-up time: bench/TUNING.md) */
  signals(): Record<string, number>;
  SC_NPROCESSORS_ONLN: number;
  /** sysconf's name for the clock tick rate (where /proc reports times in ticks) */
  SC_CLK_TCK?: number;
  /** how a waiter learns that a slot may be free */
  waker: "inotify" | "backoff";
  /** how a holder learns that its owner died */
  ownerWatch: "pidfd" | "kqueue" | "kill";
  /** struct kevent and the constants to watch a process exit (BSD, macOS) */
  kevent?: KeventLayout;
  /** sysctl MIB of a process's arguments, and how the answer is laid out */
  procArgs?: { mib: (pid: number) => number[]; layout: "nul" | "procargs2" | "argv-pointers" };
  /** sysctl MIB of the CPU count (CTL_HW, HW_NCPU), where sysconf may not answer */
  hwNcpu?: number[];
  /**
   * Linux: every call goes through syscall(2) by number, so that start-up binds two libc
   * symbols instead of a dozen (each costs start-up time to compile a trampoline for:
   * bench/TUNING.md, second round).
   */
  SYS?: Syscalls;
  /**
   * How libc's `environ` (the environment a command inherits) is found: its address from
   * dlsym(RTLD_DEFAULT, "environ"), given RTLD_DEFAULT's value; or (macOS, where only the
   * executable may name `environ`) from _NSGetEnviron().
   */
  environ: { RTLD_DEFAULT: number } | "_NSGetEnviron";
  /**
   * posix_spawn(3)'s attribute flags; the size of libc's sigset_t; the signals libc keeps for
   * itself, which its posix_spawn leaves ignored in the child unless they are asked to be
   * reset.
   */
  spawn: { SETPGROUP: number; SETSIGDEF: number; SETSIGMASK: number; sigsetBytes: number; reserved: number[]; attr?: SpawnAttrLayout };
  /** sigprocmask(2)'s `how`; the ioctl that clears close-on-exec (FIONCLEX) */
  job: { SIG_BLOCK: number; SIG_SETMASK: number; FIONCLEX: number };
  /** libc's names for sigaction and sigprocmask, where calls go by name (NetBSD versions them) */
  sigactionFn?: string;
  sigprocmaskFn?: string;
  /**
   * Linux: the inode number of the initial PID namespace (PROC_PID_INIT_INO in the kernel's
   * include/linux/proc_ns.h, fixed since Linux 3.8), as stat(2) of /proc/self/ns/pid shows it
   */
  initialPidNamespace?: number;
  IN?: { ATTRIB: number; CLOSE_WRITE: number; DELETE_SELF: number; MOVE_SELF: number; IGNORED: number; Q_OVERFLOW: number; NONBLOCK: number; CLOEXEC: number };
}

export interface Syscalls {
  read: number; pread64: number; pwrite64: number; openat: number; close: number; flock: number;
  fstat: number; newfstatat: number; ftruncate: number; unlinkat: number; faccessat: number;
  mkdirat: number; fchmodat: number; fchmod: number; kill: number; getppid: number; getuid: number;
  uname: number; ioctl: number; ppoll: number; inotify_init1: number; inotify_add_watch: number;
  inotify_rm_watch: number; pidfd_open: number; gettid: number; tgkill: number; wait4: number; rt_sigaction: number;
  rt_sigprocmask: number; getpgid: number; setpgid: number; getdents64: number; readlinkat: number; prlimit64: number;
  sched_yield: number;
  /** the arguments that name "relative to the working directory", "do not follow", "is a terminal?" */
  AT_FDCWD: number; AT_SYMLINK_NOFOLLOW: number; TCGETS: number;
  /** a terminal's foreground process group: get, set */
  TIOCGPGRP: number; TIOCSPGRP: number;
  RLIMIT_NOFILE: number;
  /** the kernel's sigset_t, as rt_sigaction and rt_sigprocmask take it (not libc's) */
  KERNEL_SIGSET_BYTES: number;
}

export interface KeventLayout {
  size: number;
  /** filter is a 16-bit signed field on macOS, FreeBSD and OpenBSD */
  filter: number;
  flags: number;
  fflags: number;
  EVFILT_PROC: number;
  NOTE_EXIT: number;
  EV_ADD: number;
  EV_ONESHOT: number;
}

/**
 * Where libc's ABI fixes the layout of posix_spawnattr_t (Linux: glibc's struct and musl's
 * agree: the flags at 0, a short in glibc and an int in musl, both little-endian here; the
 * process group at 4; the default and mask sigset_t at 8 and 136), offsets in bytes.
 * posix_spawnattr_init only zeroes the struct and the setters only store these fields, so
 * the attributes are written in place and only posix_spawn itself is bound.
 */
export interface SpawnAttrLayout {
  bytes: number;
  flags: number;
  pgroup: number;
  sigdefault: number;
  sigmask: number;
}

export type ErrnoName =
  | "EPERM" | "ENOENT" | "ESRCH" | "EINTR" | "EBADF" | "EACCES" | "EEXIST" | "ENOTDIR" | "EISDIR"
  | "EINVAL" | "ENFILE" | "EMFILE" | "ENOSPC" | "EROFS" | "EAGAIN" | "ELOOP" | "ENOLCK" | "ENOSYS"
  | "EDQUOT" | "ENAMETOOLONG";

export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;
/** wait4/waitpid options; the same on Linux, macOS and the BSDs */
export const WAIT = { NOHANG: 1, UNTRACED: 2 } as const;
export const POLLIN = 1;
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_ISVTX = 0o1000;
export const S_IWOTH = 0o002;

const f = (off: number, size: 2 | 4 | 8): Field => ({ off, size });

// Literal tables: building them with Object.fromEntries costs more at start-up than a
// literal does. Still, each property of a new literal costs a structure transition
// (bench/TUNING.md), so a table the running system or the lock path does not need is a
// function, built when asked for.
const linuxSignals = (): Record<string, number> => ({
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10,
  SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19,
  SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28,
  SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
});
const bsdSignals = (): Record<string, number> => ({
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGEMT: 7, SIGFPE: 8, SIGKILL: 9, SIGBUS: 10,
  SIGSEGV: 11, SIGSYS: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGURG: 16, SIGSTOP: 17, SIGTSTP: 18, SIGCONT: 19,
  SIGCHLD: 20, SIGTTIN: 21, SIGTTOU: 22, SIGIO: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28,
  SIGINFO: 29, SIGUSR1: 30, SIGUSR2: 31,
});

const bsdErrno = () => ({
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EBADF: 9, EACCES: 13, EEXIST: 17, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOSPC: 28, EROFS: 30, EAGAIN: 35, ELOOP: 62, ENAMETOOLONG: 63,
  ENOLCK: 77, ENOSYS: 78, EDQUOT: 69,
});

const LINUX_ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EBADF: 9, EACCES: 13, EEXIST: 17, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOSPC: 28, EROFS: 30, EAGAIN: 11, ELOOP: 40, ENAMETOOLONG: 36,
  ENOLCK: 37, ENOSYS: 38, EDQUOT: 122,
};

// x86_64 and the other "old" Linux ABIs share one struct stat; arm64/riscv use asm-generic.
const linuxStatX86_64 = (): StatLayout => ({
  size: 144, dev: f(0, 8), ino: f(8, 8), nlink: f(16, 8), mode: f(24, 4), uid: f(28, 4), fileSize: f(48, 8),
});
const linuxStatGeneric = (): StatLayout => ({
  size: 128, dev: f(0, 8), ino: f(8, 8), mode: f(16, 4), nlink: f(20, 4), uid: f(24, 4), fileSize: f(48, 8),
});

// x86_64 kept its own numbering; arm64 (and riscv64) use the unified asm-generic table, which
// has only the *at() forms and ppoll. pidfd_open came after the unification: 434 everywhere.
const LINUX_AT = {
  AT_FDCWD: -100, AT_SYMLINK_NOFOLLOW: 0x100, TCGETS: 0x5401, TIOCGPGRP: 0x540f, TIOCSPGRP: 0x5410, pidfd_open: 434,
  RLIMIT_NOFILE: 7, KERNEL_SIGSET_BYTES: 8,
};
const linuxSysX86_64 = (): Syscalls => ({
  read: 0, pread64: 17, pwrite64: 18, openat: 257, close: 3, flock: 73, fstat: 5, newfstatat: 262, ftruncate: 77,
  unlinkat: 263, faccessat: 269, mkdirat: 258, fchmodat: 268, fchmod: 91, kill: 62, getppid: 110, getuid: 102,
  uname: 63, ioctl: 16, ppoll: 271, inotify_init1: 294, inotify_add_watch: 254, inotify_rm_watch: 255, gettid: 186, tgkill: 234,
  wait4: 61, rt_sigaction: 13, rt_sigprocmask: 14, getpgid: 121, setpgid: 109, getdents64: 217, readlinkat: 267, prlimit64: 302, sched_yield: 24, ...LINUX_AT,
});
const linuxSysGeneric = (): Syscalls => ({
  read: 63, pread64: 67, pwrite64: 68, openat: 56, close: 57, flock: 32, fstat: 80, newfstatat: 79, ftruncate: 46,
  unlinkat: 35, faccessat: 48, mkdirat: 34, fchmodat: 53, fchmod: 52, kill: 129, getppid: 173, getuid: 174,
  uname: 160, ioctl: 29, ppoll: 73, inotify_init1: 26, inotify_add_watch: 27, inotify_rm_watch: 28, gettid: 178, tgkill: 131,
  wait4: 260, rt_sigaction: 134, rt_sigprocmask: 135, getpgid: 155, setpgid: 154, getdents64: 61, readlinkat: 78, prlimit64: 261, sched_yield: 124, ...LINUX_AT,
});

// O_NOFOLLOW and O_DIRECTORY are the two flags arm64 moved.
const linux = (arch: string): Platform => {
  const arm = arch === "arm64";
  return {
    os: "linux",
    // glibc first; a musl build of Bun finds the musl loader's libc instead.
    libc: ["libc.so.6", `libc.musl-${arm ? "aarch64" : "x86_64"}.so.1`],
    errnoFn: "__errno_location",
    stat: arm ? linuxStatGeneric() : linuxStatX86_64(),
    O: {
      RDONLY: 0, WRONLY: 1, RDWR: 2, CREAT: 0o100, EXCL: 0o200, NONBLOCK: 0o4000, CLOEXEC: 0o2000000,
      NOFOLLOW: arm ? 0o100000 : 0o400000, DIRECTORY: arm ? 0o40000 : 0o200000,
    },
    E: LINUX_ERRNO,
    signals: linuxSignals,
    SC_NPROCESSORS_ONLN: 84,
    SC_CLK_TCK: 2,
    waker: "inotify",
    ownerWatch: "pidfd",
    environ: { RTLD_DEFAULT: 0 },
    // glibc and musl alike; libc's sigset_t is 1024 bits, the kernel's 64. glibc reserves
    // signals 32 and 33 (SIGCANCEL, SIGSETXID), musl 32 to 34.
    spawn: { SETPGROUP: 0x02, SETSIGDEF: 0x04, SETSIGMASK: 0x08, sigsetBytes: 128, reserved: [32, 33, 34], attr: { bytes: 336, flags: 0, pgroup: 4, sigdefault: 8, sigmask: 136 } },
    job: { SIG_BLOCK: 0, SIG_SETMASK: 2, FIONCLEX: 0x5450 },
    SYS: arm ? linuxSysGeneric() : linuxSysX86_64(),
    initialPidNamespace: 0xeffffffc,
    IN: {
      ATTRIB: 0x4, CLOSE_WRITE: 0x8, DELETE_SELF: 0x400, MOVE_SELF: 0x800, IGNORED: 0x8000, Q_OVERFLOW: 0x4000,
      NONBLOCK: 0o4000, CLOEXEC: 0o2000000,
    },
  };
};

// struct kevent { uintptr_t ident; int16_t filter; uint16_t flags; uint32_t fflags;
// intptr_t data; void *udata; [FreeBSD 12+: uint64_t ext[4];] }
const kevent = (size: number): KeventLayout => ({ size, filter: 8, flags: 10, fflags: 12, EVFILT_PROC: -5, NOTE_EXIT: 0x80000000, EV_ADD: 0x1, EV_ONESHOT: 0x10 });
const CTL_KERN = 1;
const HW_NCPU = [6, 3];
// sys/signal.h and sys/filio.h (FIONCLEX = _IO('f', 2)), the same on macOS and the BSDs.
const BSD_JOB = { SIG_BLOCK: 1, SIG_SETMASK: 3, FIONCLEX: 0x20006602 };
// dlfcn.h: ((void *)-2) on FreeBSD, OpenBSD and NetBSD.
const BSD_RTLD_DEFAULT = -2;
// spawn.h of FreeBSD, OpenBSD and NetBSD (macOS numbers them as glibc does).
const BSD_SPAWN = { SETPGROUP: 0x02, SETSIGDEF: 0x10, SETSIGMASK: 0x20 };

const darwin = (arch: string): Platform => ({
  os: "darwin",
  libc: ["/usr/lib/libSystem.B.dylib"],
  errnoFn: "__error",
  // x86_64 keeps the 32-bit-inode symbols under the plain names.
  fstatFn: arch === "x64" ? "fstat$INODE64" : "fstat",
  lstatFn: arch === "x64" ? "lstat$INODE64" : "lstat",
  stat: { size: 144, dev: f(0, 4), mode: f(4, 2), nlink: f(6, 2), ino: f(8, 8), uid: f(16, 4), fileSize: f(96, 8) },
  O: { RDONLY: 0, WRONLY: 1, RDWR: 2, NONBLOCK: 0x4, CREAT: 0x200, EXCL: 0x800, NOFOLLOW: 0x100, CLOEXEC: 0x1000000, DIRECTORY: 0x100000 },
  E: bsdErrno(),
  signals: bsdSignals,
  SC_NPROCESSORS_ONLN: 58,
  waker: "backoff",
  ownerWatch: "kqueue",
  kevent: kevent(32),
  environ: "_NSGetEnviron",
  spawn: { SETPGROUP: 0x02, SETSIGDEF: 0x04, SETSIGMASK: 0x08, sigsetBytes: 4, reserved: [] },
  job: BSD_JOB,
  // KERN_PROCARGS2: argc, the executable path, padding, then the arguments.
  procArgs: { mib: (pid) => [CTL_KERN, 49, pid], layout: "procargs2" },
  hwNcpu: HW_NCPU,
});

const freebsd = (): Platform => ({
  os: "freebsd",
  libc: ["libc.so.7"],
  errnoFn: "__error",
  fstatFn: "fstat",
  lstatFn: "lstat",
  stat: { size: 224, dev: f(0, 8), ino: f(8, 8), nlink: f(16, 8), mode: f(24, 2), uid: f(28, 4), fileSize: f(112, 8) },
  O: { RDONLY: 0, WRONLY: 1, RDWR: 2, NONBLOCK: 0x4, CREAT: 0x200, EXCL: 0x800, NOFOLLOW: 0x100, CLOEXEC: 0x100000, DIRECTORY: 0x20000 },
  E: bsdErrno(),
  signals: bsdSignals,
  SC_NPROCESSORS_ONLN: 58,
  waker: "backoff",
  ownerWatch: "kqueue",
  kevent: kevent(64),
  environ: { RTLD_DEFAULT: BSD_RTLD_DEFAULT },
  spawn: { ...BSD_SPAWN, sigsetBytes: 16, reserved: [] },
  job: BSD_JOB,
  // KERN_PROC, KERN_PROC_ARGS: the arguments, each NUL-terminated.
  procArgs: { mib: (pid) => [CTL_KERN, 14, 7, pid], layout: "nul" },
  hwNcpu: HW_NCPU,
});

const openbsd = (): Platform => ({
  os: "openbsd",
  libc: ["libc.so"],
  errnoFn: "__errno",
  fstatFn: "fstat",
  lstatFn: "lstat",
  stat: { size: 128, mode: f(0, 4), dev: f(4, 4), ino: f(8, 8), nlink: f(16, 4), uid: f(20, 4), fileSize: f(80, 8) },
  O: { RDONLY: 0, WRONLY: 1, RDWR: 2, NONBLOCK: 0x4, CREAT: 0x200, EXCL: 0x800, NOFOLLOW: 0x100, CLOEXEC: 0x10000, DIRECTORY: 0x20000 },
  E: bsdErrno(),
  signals: bsdSignals,
  SC_NPROCESSORS_ONLN: 503,
  waker: "backoff",
  ownerWatch: "kqueue",
  kevent: kevent(32),
  environ: { RTLD_DEFAULT: BSD_RTLD_DEFAULT },
  spawn: { ...BSD_SPAWN, sigsetBytes: 4, reserved: [] },
  job: BSD_JOB,
  // KERN_PROC_ARGS, KERN_PROC_ARGV: a NULL-terminated char *argv[] pointing into the buffer.
  procArgs: { mib: (pid) => [CTL_KERN, 55, pid, 1], layout: "argv-pointers" },
  hwNcpu: HW_NCPU,
});

const netbsd = (): Platform => ({
  os: "netbsd",
  libc: ["libc.so.12"],
  errnoFn: "__errno",
  fstatFn: "__fstat50",
  lstatFn: "__lstat50",
  stat: { size: 152, dev: f(0, 8), mode: f(8, 4), ino: f(16, 8), nlink: f(24, 4), uid: f(28, 4), fileSize: f(112, 8) },
  O: { RDONLY: 0, WRONLY: 1, RDWR: 2, NONBLOCK: 0x4, CREAT: 0x200, EXCL: 0x800, NOFOLLOW: 0x100, CLOEXEC: 0x400000, DIRECTORY: 0x200000 },
  E: bsdErrno(),
  signals: bsdSignals,
  SC_NPROCESSORS_ONLN: 1002,
  waker: "backoff",
  // NetBSD's struct kevent has a 32-bit filter and changed size in 10.0 (__kevent100):
  // the holder polls its owner with kill(pid, 0) there.
  ownerWatch: "kill",
  environ: { RTLD_DEFAULT: BSD_RTLD_DEFAULT },
  spawn: { ...BSD_SPAWN, sigsetBytes: 16, reserved: [] },
  job: BSD_JOB,
  sigactionFn: "__sigaction14",
  sigprocmaskFn: "__sigprocmask14",
  // KERN_PROC_ARGS, KERN_PROC_ARGV: the arguments, each NUL-terminated.
  procArgs: { mib: (pid) => [CTL_KERN, 48, pid, 1], layout: "nul" },
  hwNcpu: HW_NCPU,
});

export function platformFor(os: string, arch: string): Platform {
  switch (os) {
    case "linux":
      return linux(arch);
    case "darwin":
      return darwin(arch);
    case "freebsd":
      return freebsd();
    case "openbsd":
      return openbsd();
    case "netbsd":
      return netbsd();
    default:
      throw new Error(`unsupported platform: ${os}`);
  }
}

export const platform: Platform = platformFor(process.platform, process.arch);

/** syslog(3) numbers; the same on Linux, macOS and the BSDs. */
export const LOG = {
  PID: 0x01,
  NDELAY: 0x08,
  WARNING: 4,
  INFO: 6,
} as const;

/** syslog(3) facility codes by name; the same everywhere. */
export const syslogFacilities = (): Record<string, number> => ({
  kern: 0 << 3, user: 1 << 3, mail: 2 << 3, daemon: 3 << 3, auth: 4 << 3, syslog: 5 << 3, lpr: 6 << 3,
  news: 7 << 3, uucp: 8 << 3, cron: 9 << 3, authpriv: 10 << 3, ftp: 11 << 3,
  local0: 16 << 3, local1: 17 << 3, local2: 18 << 3, local3: 19 << 3,
  local4: 20 << 3, local5: 21 << 3, local6: 22 << 3, local7: 23 << 3,
});
