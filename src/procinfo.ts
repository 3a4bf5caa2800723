// What we can learn about other processes: their command lines, and when they exit.
import { E, addressOfBuffer, close, getppid, kill, pidfdOpen, platform, pollReadable, processExitQueue, readFileBytes, strerror, sysctl, waitQueue } from "../ffi/libc";
import { inInitialPidNamespace, sameProcess } from "./holders";
import { warn } from "./log";
import { EXIT, UsageError, WaitlockError } from "./errors";
import { sysError } from "./syserror";
import { pollingForced } from "./waker";

const decoder = new TextDecoder();

/** NUL-terminated strings from `offset`, at most `count` of them. */
function strings(buf: Uint8Array, offset: number, count = Infinity): string[] {
  const out: string[] = [];
  while (offset < buf.length && out.length < count) {
    const end = buf.indexOf(0, offset);
    out.push(decoder.decode(buf.subarray(offset, end < 0 ? buf.length : end)));
    offset = end < 0 ? buf.length : end + 1;
  }
  return out;
}

/**
 * The arguments in a sysctl answer: "nul" (FreeBSD, NetBSD), "procargs2" (macOS: argc, the
 * executable path, NUL padding, the arguments) or "argv-pointers" (OpenBSD: a NULL-ended
 * array of pointers into the buffer, which lives at `base`).
 */
export function decodeProcArgs(buf: Uint8Array, layout: "nul" | "procargs2" | "argv-pointers", base = 0): string {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (layout === "nul") return strings(buf, 0).filter((s, i, all) => s !== "" || i < all.length - 1).join(" ");
  if (layout === "procargs2") {
    if (buf.length < 4) return "";
    const argc = view.getInt32(0, true);
    let offset = buf.indexOf(0, 4);
    while (offset >= 0 && offset < buf.length && buf[offset] === 0) offset++;
    return offset < 0 ? "" : strings(buf, offset, argc).join(" ");
  }
  const args: string[] = [];
  for (let at = 0; at + 8 <= buf.length; at += 8) {
    const p = Number(view.getBigUint64(at, true));
    if (p === 0) break;
    const offset = p - base;
    if (offset < 0 || offset >= buf.length) return "";
    args.push(strings(buf, offset, 1)[0] ?? "");
  }
  return args.join(" ");
}

/** The command line of `pid`, arguments joined by spaces; "" when it cannot be read. */
export function commandLine(pid: number): string {
  if (platform.procArgs) {
    const answer = sysctl(platform.procArgs.mib(pid));
    return typeof answer === "number" ? "" : decodeProcArgs(answer, platform.procArgs.layout, addressOfBuffer(answer));
  }
  const all = readFileBytes(`/proc/${pid}/cmdline`, 65536);
  if (typeof all === "number") return "";
  // A loop rather than a regex: the holder for `waitlock NAME` reads this on start-up.
  let end = all.length;
  while (end > 0 && all[end - 1] === 0) end--;
  return new TextDecoder().decode(all.subarray(0, end)).replaceAll("\0", " ");
}

/** Does `pid` name a live process (that we may or may not signal)? */
export function alive(pid: number): boolean {
  const r = kill(pid, 0);
  return r === 0 || r === -E.EPERM;
}

export type ExitWatch = { kind: "pidfd"; fd: number } | { kind: "kqueue" } | { kind: "poll" } | { kind: "gone" };

/**
 * How to learn that `pid` exits: a pidfd that polls readable (Linux), opened before anything
 * depends on it so that a reused PID cannot slip in between; a kqueue that the holder makes
 * itself (BSD, macOS: kqueues are not inherited); else polling `alive`, with a warning
 * unless polling was asked for (WAITLOCK_POLL). Throws exit 75 when out of descriptors.
 */
export function exitWatch(pid: number): ExitWatch {
  const gone = { kind: "gone" } as const;
  if (pollingForced()) return alive(pid) ? { kind: "poll" } : gone;
  if (platform.ownerWatch === "kqueue") return alive(pid) ? { kind: "kqueue" } : gone;
  const fd = pidfdOpen(pid);
  if (fd >= 0) return { kind: "pidfd", fd };
  if (fd === -E.ESRCH) return gone;
  if (fd === -E.EMFILE || fd === -E.ENFILE) throw sysError(`process ${pid}`, fd, "cannot watch for its exit");
  if (!alive(pid)) return gone;
  warn(`process ${pid}`, `no pidfd (${strerror(fd)}): the holder polls for its exit every 250 ms`);
  return { kind: "poll" };
}

/** How often a watch that cannot sleep in the kernel looks whether its process still runs (milliseconds). */
const POLL_MS = 250;

/**
 * Resolves when the process `owner` (started at `ownerStart`, Unix seconds; undefined: not
 * known) exits, watched by `watch`: "pidfd" (its pidfd is open at `pidfd`), "kqueue", or
 * anything else: polling every 250 ms. This thread sleeps in the kernel meanwhile; a
 * signal that interrupts the wait lets its handler run. `sliceMs` >= 0: wake up that often
 * anyway (a process with other threads may have the signal taken by one of them, leaving
 * this wait uninterrupted), polling where the wait cannot be bounded (kqueue).
 */
export async function untilExit(owner: number, ownerStart: number | undefined, watch: string, pidfd: number, sliceMs = -1): Promise<void> {
  if (watch === "pidfd") {
    for (;;) {
      const r = pollReadable([pidfd], sliceMs);
      if (typeof r === "number" ? r !== -E.EINTR : r.length > 0) return;
      await Bun.sleep(0);
    }
  }
  const queue = watch === "kqueue" && sliceMs < 0 ? processExitQueue(owner) : -E.ENOSYS;
  if (queue >= 0) while (waitQueue(queue) === -E.EINTR) await Bun.sleep(0);
  else if (queue !== -E.ESRCH) while (sameProcess(owner, ownerStart)) await Bun.sleep(sliceMs < 0 ? POLL_MS : sliceMs);
}

/** What an exit watch's thread is told (src/exitwatch-worker.ts): untilExit's arguments. */
export interface ExitOrder {
  pid: number;
  start: number | undefined;
  watch: ExitWatch["kind"];
  pidfd: number;
}

/**
 * The compiled executable starts an exit watch's thread from its one entry (src/main.ts),
 * told by this argument: an entry of its own would share modules with the main one, and
 * the bundler would split them into a chunk that every start loads.
 */
const compiledThread = (): Worker | undefined => (Bun.main.startsWith("/$bunfs/") ? new Worker(Bun.main, { argv: ["__exitwatch"] }) : undefined);

/**
 * Resolves once the process `pid` (started at `start`, Unix seconds; undefined: not known)
 * has exited, learnt as untilExit learns it (`watch`; a pidfd open at `pidfd`) but by a
 * thread of its own (src/exitwatch-worker.ts) that sleeps in the kernel: this thread's event
 * loop goes on (a lease's renewals, its engine's connection) and is woken by the exit alone.
 * That thread never keeps the process running; should it fail to start, this thread polls
 * every 250 ms instead.
 */
export function whenExits(pid: number, start: number | undefined, watch: ExitWatch["kind"], pidfd: number): Promise<void> {
  return new Promise((resolve) => {
    const worker = compiledThread() ?? new Worker(new URL("./exitwatch-worker.ts", import.meta.url).href);
    worker.unref();
    worker.onmessage = () => resolve();
    worker.onerror = (event) => {
      warn(`process ${pid}`, `cannot watch for its exit from a thread (${event.message}): polling every ${POLL_MS} ms`);
      const polling = setInterval(() => {
        if (sameProcess(pid, start)) return;
        clearInterval(polling);
        resolve();
      }, POLL_MS);
    };
    const order: ExitOrder = { pid, start, watch, pidfd };
    worker.postMessage(order);
  });
}

/** The user ID a process runs as (Linux: the owner of /proc/PID), or undefined. */
export function processUid(pid: number): number | undefined {
  const { statSync } = require("node:fs") as typeof import("node:fs");
  return statSync(`/proc/${pid}`, { throwIfNoEntry: false })?.uid;
}

/** The parent of `pid` (Linux: /proc/PID/stat), or undefined. */
export function parentOf(pid: number): number | undefined {
  const { readFileSync } = require("node:fs") as typeof import("node:fs");
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The parent is the second field after the command name, which may hold spaces.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/**
 * The process that started this one (its parent), or undefined when that process has
 * already exited. An orphan is adopted by init, and the initial PID namespace's init is
 * never a script's shell; in a container's namespace PID 1 may well be the script itself,
 * so there it counts as the caller. (An orphan adopted by a subreaper, such as
 * `systemd --user`, cannot be told from that subreaper's child.)
 */
export function callerPid(): number | undefined {
  const parent = getppid();
  return parent === 1 && inInitialPidNamespace() !== false ? undefined : parent;
}

/**
 * Refuses `--owner PID` (UsageError, exit 3) when the caller may not signal that process
 * (another user's, for an ordinary user): the lock would tie its life to that process, and
 * `waitlock --done` would stop it.
 */
export function refuseForeignOwner(pid: number): void {
  if (kill(pid, 0) === -E.EPERM) throw new UsageError("--owner", `process ${pid} belongs to another user: it cannot own your lock`);
}

/**
 * The process a plain acquire holds its lock for, `ownerOption` (--owner) or else the
 * caller, and how its exit is to be learnt (exitWatch: a pidfd, which the caller closes).
 * The pidfd is opened before anything depends on it, and the caller checked to be the
 * parent still afterwards: it is the caller's, whatever becomes of its PID. Throws
 * UsageError (3) for an --owner that does not exist or belongs to another user,
 * WaitlockError 4 (about `context`) when the caller has already exited.
 */
export function ownerToHold(ownerOption: number | undefined, context: string): { owner: number; watch: ExitWatch } {
  if (ownerOption !== undefined) refuseForeignOwner(ownerOption);
  const owner = ownerOption ?? callerPid();
  const watch: ExitWatch = owner === undefined ? { kind: "gone" } : exitWatch(owner);
  if (watch.kind === "gone" || (ownerOption === undefined && getppid() !== owner)) {
    if (watch.kind === "pidfd") close(watch.fd);
    if (ownerOption !== undefined) throw new UsageError("--owner", `no process with PID ${ownerOption}`);
    throw new WaitlockError(EXIT.SYSTEM, context, "the calling process has already exited");
  }
  return { owner: owner!, watch };
}

/** This process and its ancestors up to init (where only the parent can be known: those two). */
export function ancestorsOfSelf(): Set<number> {
  const chain = new Set([process.pid, getppid()]);
  for (let pid = parentOf(getppid()); pid !== undefined && pid > 0 && !chain.has(pid); pid = parentOf(pid)) chain.add(pid);
  return chain;
}

/** How this same program is started again (compiled, or run from source by bun). */
export const selfCommand = (): string[] => (Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main]);
