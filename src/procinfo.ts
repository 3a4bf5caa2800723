// What we can learn about other processes: their command lines, and when they exit.
import { E, O, close, kill, open, pidfdOpen, readSome } from "../ffi/libc";
import { pollingForced } from "./waker";

/** The command line of `pid`, arguments joined by spaces; "" when it cannot be read. */
export function commandLine(pid: number): string {
  const fd = open(`/proc/${pid}/cmdline`, O.RDONLY | O.CLOEXEC);
  if (fd < 0) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const buf = new Uint8Array(4096);
    for (let n; total < 65536 && (n = readSome(fd, buf)) > 0; total += n) chunks.push(buf.slice(0, n));
  } finally {
    close(fd);
  }
  const all = new Uint8Array(total);
  chunks.reduce((off, c) => (all.set(c, off), off + c.length), 0);
  return new TextDecoder().decode(all).replace(/\0+$/, "").replaceAll("\0", " ");
}

/** Does `pid` name a live process (that we may or may not signal)? */
export function alive(pid: number): boolean {
  const r = kill(pid, 0);
  return r === 0 || r === -E.EPERM;
}

export type ExitWatch = { kind: "pidfd"; fd: number } | { kind: "poll" } | { kind: "gone" };

/**
 * How to learn that `pid` exits: a pidfd that polls readable (Linux), else polling `alive`.
 * Opened before anything depends on it, so that a reused PID cannot slip in between.
 */
export function exitWatch(pid: number): ExitWatch {
  if (pollingForced()) return alive(pid) ? { kind: "poll" } : { kind: "gone" };
  const fd = pidfdOpen(pid);
  if (fd >= 0) return { kind: "pidfd", fd };
  if (fd === -E.ESRCH) return { kind: "gone" };
  return alive(pid) ? { kind: "poll" } : { kind: "gone" };
}
