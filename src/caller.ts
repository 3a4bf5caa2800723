// What the command run by --exec must inherit from waitlock's caller, read before waitlock
// opens anything of its own or handles a signal. On Linux the runtime changes two things at
// start-up, before waitlock's code runs: it marks every inherited descriptor above 3
// close-on-exec, and it raises the soft RLIMIT_NOFILE to the hard limit (elsewhere it does
// neither). And installing a signal handler clears the signal mask.
import { E, fileLimit, getppid, openDescriptors, signalMask, type SignalMask } from "../ffi/libc";
import { sysError } from "./syserror";

export interface Caller {
  /** descriptors above 2 that the caller passed, open in this process */
  descriptors: number[];
  /** the caller's signal mask */
  mask: SignalMask;
  /** the caller's RLIMIT_NOFILE, when the runtime raised this process's soft limit above it */
  fileLimit?: { soft: number; hard: number };
}

/** The runtime's own event loop (an epoll instance and an eventfd) is not the caller's. */
const EVENT_LOOP = "anon_inode:[event";

/**
 * The caller's descriptors and soft RLIMIT_NOFILE (see `Caller`). The descriptors are those
 * open now but the runtime's event loop. The soft limit is best effort: the runtime keeps no
 * copy of the one it replaced, so it is the parent's when the parent has the same hard limit
 * (a shell that ran `ulimit -Sn`, then waitlock), else left as it is. Throws exit 75 when out
 * of descriptors.
 */
export function callerState(): Caller {
  const caller: Caller = { descriptors: [], mask: signalMask() };
  const fds = openDescriptors(EVENT_LOOP);
  if (fds === -E.EMFILE || fds === -E.ENFILE) throw sysError("/proc/self/fd", fds, "cannot list the caller's descriptors");
  if (typeof fds === "number") return caller;
  for (const fd of fds) if (fd > 2) caller.descriptors.push(fd);
  const own = fileLimit();
  if (typeof own === "number" || own.soft !== own.hard) return caller;
  const parent = fileLimit(getppid());
  if (typeof parent !== "number" && parent.hard === own.hard && parent.soft < own.soft) caller.fileLimit = parent;
  return caller;
}
