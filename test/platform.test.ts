// The per-platform tables of ffi/platform.ts, checked against the platforms' own values:
// Linux against this machine's C headers (compiled here), macOS and the BSDs against their
// published headers, transcribed below independently of the table.
import { expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { LOCK, LOG, WAIT, platformFor, syslogFacilities } from "../ffi/platform";
import { decodeProcArgs } from "../src/procinfo";
import { linux, lockDir, needs, run, tool } from "./helpers";

needs(linux(), tool("cc"))("the Linux table matches this machine's headers (cc)", async () => {
  const bin = join(lockDir(), "constants");
  const cc = await run(["cc", "-o", bin, join(import.meta.dir, "fixtures/constants.c")]);
  expect(cc.stderr).toBe("");
  const c = JSON.parse((await run([bin])).stdout);
  const p = platformFor("linux", process.arch);
  expect(p.O).toEqual(c.O);
  expect(p.E).toEqual(c.E);
  expect(LOCK).toEqual(c.LOCK);
  expect(p.SC_NPROCESSORS_ONLN).toBe(c.SC_NPROCESSORS_ONLN);
  expect(p.SC_CLK_TCK).toBe(c.SC_CLK_TCK);
  expect(p.SYS).toEqual(c.SYS);
  expect(p.IN).toEqual(c.IN);
  expect(p.environ).toEqual({ RTLD_DEFAULT: c.RTLD_DEFAULT });
  const { reserved, ...spawn } = p.spawn;
  expect(spawn).toEqual(c.spawn);
  // The real-time signals below SIGRTMIN are libc's own.
  for (let n = 32; n < c.SIGRTMIN; n++) expect(reserved).toContain(n);
  expect(p.job).toEqual(c.job);
  expect(WAIT).toEqual(c.WAIT);
  expect({ size: p.stat.size, dev: p.stat.dev.off, ino: p.stat.ino.off, nlink: p.stat.nlink.off, mode: p.stat.mode.off, uid: p.stat.uid.off, fileSize: p.stat.fileSize.off }).toEqual(c.stat);
  for (const [name, n] of Object.entries(c.SIG as Record<string, number>)) expect({ name, n: p.signals()[name] }).toEqual({ name, n });
  const facility = syslogFacilities();
  expect({ PID: LOG.PID, NDELAY: LOG.NDELAY, WARNING: LOG.WARNING, INFO: LOG.INFO }).toEqual({ PID: c.LOG.PID, NDELAY: c.LOG.NDELAY, WARNING: c.LOG.WARNING, INFO: c.LOG.INFO });
  for (const f of ["daemon", "user", "local0", "local5", "local7", "authpriv", "ftp", "cron"]) expect({ f, v: facility[f] }).toEqual({ f, v: c.LOG[f] });
});

/** Why this is not known to run in the initial PID namespace, or undefined. */
function initialPidNamespace(): string | undefined {
  const notInitial = "not in the initial PID namespace (no kthreadd at PID 2)";
  const notLinux = linux();
  if (notLinux) return notLinux;
  // Kernel threads (kthreadd is PID 2, its parent 0) are seen from the initial namespace only.
  try {
    return /^2 \(kthreadd\) \S+ 0 /.test(readFileSync("/proc/2/stat", "utf8")) ? undefined : notInitial;
  } catch {
    return notInitial;
  }
}

needs(initialPidNamespace())("the initial PID namespace is known by its inode (PROC_PID_INIT_INO)", () => {
  expect(statSync("/proc/self/ns/pid").ino).toBe(platformFor("linux", process.arch).initialPidNamespace!);
});

// From xnu bsd/sys/{fcntl,errno,signal,event,sysctl}.h, unistd.h and spawn.h; FreeBSD,
// OpenBSD and NetBSD sys/{fcntl,errno,signal,event,stat,sysctl}.h, unistd.h and spawn.h.
const published = {
  darwin: { CREAT: 0x200, NOFOLLOW: 0x100, CLOEXEC: 0x1000000, DIRECTORY: 0x100000, EAGAIN: 35, ELOOP: 62, ENOLCK: 77, SIGUSR1: 30, SIGUSR2: 31, SIGCHLD: 20, SC: 58, statSize: 144, ino: 8, fileSize: 96, kevent: 32, procArgs: [1, 49, 42], errnoFn: "__error", spawn: [0x02, 0x04, 0x08, 4] },
  freebsd: { CREAT: 0x200, NOFOLLOW: 0x100, CLOEXEC: 0x100000, DIRECTORY: 0x20000, EAGAIN: 35, ELOOP: 62, ENOLCK: 77, SIGUSR1: 30, SIGUSR2: 31, SIGCHLD: 20, SC: 58, statSize: 224, ino: 8, fileSize: 112, kevent: 64, procArgs: [1, 14, 7, 42], errnoFn: "__error", spawn: [0x02, 0x10, 0x20, 16] },
  openbsd: { CREAT: 0x200, NOFOLLOW: 0x100, CLOEXEC: 0x10000, DIRECTORY: 0x20000, EAGAIN: 35, ELOOP: 62, ENOLCK: 77, SIGUSR1: 30, SIGUSR2: 31, SIGCHLD: 20, SC: 503, statSize: 128, ino: 8, fileSize: 80, kevent: 32, procArgs: [1, 55, 42, 1], errnoFn: "__errno", spawn: [0x02, 0x10, 0x20, 4] },
  netbsd: { CREAT: 0x200, NOFOLLOW: 0x100, CLOEXEC: 0x400000, DIRECTORY: 0x200000, EAGAIN: 35, ELOOP: 62, ENOLCK: 77, SIGUSR1: 30, SIGUSR2: 31, SIGCHLD: 20, SC: 1002, statSize: 152, ino: 16, fileSize: 112, kevent: undefined, procArgs: [1, 48, 42, 1], errnoFn: "__errno", spawn: [0x02, 0x10, 0x20, 16] },
};

for (const [os, want] of Object.entries(published)) {
  test(`the ${os} table matches the published headers`, () => {
    const p = platformFor(os, "arm64");
    expect({
      CREAT: p.O.CREAT, NOFOLLOW: p.O.NOFOLLOW, CLOEXEC: p.O.CLOEXEC, DIRECTORY: p.O.DIRECTORY,
      EAGAIN: p.E.EAGAIN, ELOOP: p.E.ELOOP, ENOLCK: p.E.ENOLCK,
      SIGUSR1: p.signals().SIGUSR1, SIGUSR2: p.signals().SIGUSR2, SIGCHLD: p.signals().SIGCHLD,
      SC: p.SC_NPROCESSORS_ONLN, statSize: p.stat.size, ino: p.stat.ino.off, fileSize: p.stat.fileSize.off,
      kevent: p.kevent?.size, procArgs: p.procArgs?.mib(42), errnoFn: p.errnoFn,
      spawn: [p.spawn.SETPGROUP, p.spawn.SETSIGDEF, p.spawn.SETSIGMASK, p.spawn.sigsetBytes],
    }).toEqual(want);
    // dlfcn.h: RTLD_DEFAULT is ((void *)-2) on the BSDs; macOS's crt_externs.h offers _NSGetEnviron.
    expect(p.environ).toEqual(os === "darwin" ? "_NSGetEnviron" : { RTLD_DEFAULT: -2 });
    // sys/signal.h: SIG_BLOCK, SIG_SETMASK; sys/filio.h: FIONCLEX = _IO('f', 2).
    expect(p.job).toEqual({ SIG_BLOCK: 1, SIG_SETMASK: 3, FIONCLEX: 0x20006602 });
    expect(p.hwNcpu).toEqual([6, 3]);
    if (p.kevent) expect([p.kevent.EVFILT_PROC, p.kevent.NOTE_EXIT, p.kevent.EV_ADD, p.kevent.EV_ONESHOT]).toEqual([-5, 0x80000000, 1, 0x10]);
    expect(p.ownerWatch).toBe(os === "netbsd" ? "kill" : "kqueue");
    expect(p.waker).toBe("backoff");
  });
}

test("macOS on Intel uses the 64-bit-inode stat symbols", () => {
  expect([platformFor("darwin", "x64").fstatFn, platformFor("darwin", "arm64").fstatFn]).toEqual(["fstat$INODE64", "fstat"]);
  expect(platformFor("netbsd", "x64").lstatFn).toBe("__lstat50");
  expect(platformFor("linux", "arm64").O.NOFOLLOW).toBe(0o100000);
});

test("command lines decode from each sysctl layout", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  expect(decodeProcArgs(enc("sleep\x0030\x00"), "nul")).toBe("sleep 30");
  const argc = new Uint8Array(4);
  new DataView(argc.buffer).setInt32(0, 2, true);
  const procargs2 = new Uint8Array([...argc, ...enc("/bin/sleep\x00\x00\x00\x00sleep\x0030\x00HOME=/root\x00")]);
  expect(decodeProcArgs(procargs2, "procargs2")).toBe("sleep 30");
  const base = 0x10000;
  const strings = enc("sleep\x0030\x00");
  const table = new Uint8Array(24);
  const v = new DataView(table.buffer);
  v.setBigUint64(0, BigInt(base + 24), true);
  v.setBigUint64(8, BigInt(base + 30), true);
  const argv = new Uint8Array([...table, ...strings]);
  expect(decodeProcArgs(argv, "argv-pointers", base)).toBe("sleep 30");
  expect(decodeProcArgs(argv, "argv-pointers", base + 1_000_000)).toBe("");
});
