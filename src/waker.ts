// How a waiter sleeps until a slot may have been released (invariant 3: no busy waiting).
import {
  close,
  inotifyAddWatch,
  inotifyInit,
  inotifyRmWatch,
  platform,
  pollReadable,
  readSome,
  strerror,
} from "../ffi/libc";
import { debug } from "./log";

/** The longest a waiter sleeps without looking: covers filesystems that send no events (NFS). */
const RECHECK_MS = 250;

/** struct inotify_event with the longest name it can carry */
const MAX_EVENT = 16 + 256;

export interface Waker {
  /** Start watching the file open at `fd` (also reachable as `path`) for slot index `i`. */
  watch(i: number, fd: number, path: string): void;
  unwatch(i: number): void;
  /**
   * Sleep for at most `ms`. Returns the slots whose files had events, or undefined when
   * every slot must be looked at (the time ran out, or the events cannot be told apart).
   */
  sleep(ms: number): ReadonlySet<number> | undefined;
  close(): void;
}

/**
 * inotify on the slot files themselves: a holder's unlink on release (IN_ATTRIB) or the
 * close of its descriptor when it dies (IN_CLOSE_WRITE). The kernel reports that close a
 * moment before it drops the flock, so after a close the next sleeps are short (1, 2, 4
 * ... ms) until the retry wins or the steps reach the recheck period.
 */
class InotifyWaker implements Waker {
  private wds: (number | undefined)[] = [];
  /** watch descriptor -> slot index, for the watches we have now */
  private slotOf = new Map<number, number>();
  private step = RECHECK_MS;
  private readonly buf = new Uint8Array(4096);
  private readonly mask: number;

  constructor(private readonly ifd: number) {
    const IN = platform.IN!;
    this.mask = IN.ATTRIB | IN.CLOSE_WRITE | IN.DELETE_SELF | IN.MOVE_SELF;
  }

  watch(i: number, fd: number, path: string): void {
    // Through /proc the watch lands on the very inode we opened, even if the path has moved on.
    let wd = inotifyAddWatch(this.ifd, `/proc/self/fd/${fd}`, this.mask);
    if (wd < 0) wd = inotifyAddWatch(this.ifd, path, this.mask);
    if (wd < 0) {
      debug(`cannot watch ${path} (${strerror(wd)}); relying on the ${RECHECK_MS} ms recheck`);
      return;
    }
    this.wds[i] = wd;
    this.slotOf.set(wd, i);
  }

  unwatch(i: number): void {
    const wd = this.wds[i];
    if (wd === undefined) return;
    this.slotOf.delete(wd);
    inotifyRmWatch(this.ifd, wd);
    this.wds[i] = undefined;
  }

  sleep(ms: number): ReadonlySet<number> | undefined {
    const until = performance.now() + Math.min(ms, this.step);
    // Events queued while we looked (the IN_IGNORED of our own unwatch, above all) are read
    // now rather than by waking up for them.
    let seen = this.drain();
    while (!seen.overflow && seen.slots.size === 0) {
      const ready = pollReadable([this.ifd], Math.max(0, until - performance.now()));
      if (typeof ready === "number" || ready.length === 0) {
        if (this.step < RECHECK_MS) this.step = Math.min(RECHECK_MS, this.step * 2);
        return undefined;
      }
      // Only events of files we no longer watch (a released file's late close): sleep on
      // rather than make every waiter look again.
      seen = this.drain();
    }
    // A removed file was released for good; a bare close may still hold its flock a moment.
    this.step = seen.closed && !seen.removed ? 1 : RECHECK_MS;
    debug(`woke up: ${seen.removed ? "a slot file was released" : "a holder closed its slot file"}`);
    return seen.overflow ? undefined : seen.slots;
  }

  /** Reads every queued event; what happened to the slots we watch now. */
  private drain(): { removed: boolean; closed: boolean; overflow: boolean; slots: Set<number> } {
    const IN = platform.IN!;
    const seen = { removed: false, closed: false, overflow: false, slots: new Set<number>() };
    for (;;) {
      const n = readSome(this.ifd, this.buf);
      if (n <= 0) return seen;
      const view = new DataView(this.buf.buffer, 0, n);
      // Room left for another event: the read took every event queued, no need to ask again.
      const all = n <= this.buf.length - MAX_EVENT;
      for (let off = 0; off + 16 <= n; off += 16 + view.getUint32(off + 12, true)) {
        const mask = view.getUint32(off + 4, true);
        if (mask & IN.Q_OVERFLOW) seen.overflow = seen.closed = true;
        const slot = this.slotOf.get(view.getInt32(off, true));
        if (slot === undefined) continue;
        seen.slots.add(slot);
        if (mask & (IN.ATTRIB | IN.DELETE_SELF | IN.MOVE_SELF)) seen.removed = true;
        if (mask & IN.CLOSE_WRITE) seen.closed = true;
      }
      if (all) return seen;
    }
  }

  /** Keeps the instance for the next waiter in this process: see `sharedInotify`. */
  close(): void {
    for (let i = 0; i < this.wds.length; i++) this.unwatch(i);
    this.drain();
  }
}

/** Elsewhere: sleep 10 ms, doubling to the recheck period, with jitter. */
class BackoffWaker implements Waker {
  private step = 10;
  watch(): void {}
  unwatch(): void {}
  sleep(ms: number): undefined {
    const jittered = this.step * (0.8 + Math.random() * 0.4);
    Bun.sleepSync(Math.max(1, Math.min(ms, jittered)));
    this.step = Math.min(RECHECK_MS, this.step * 2);
    return undefined;
  }
  close(): void {}
}

let polling = false;

/**
 * Wait by polling only (WAITLOCK_POLL): no inotify for waiters, no pidfd for holders. For
 * filesystems or sandboxes whose events cannot be trusted, and to test the fallbacks.
 */
export function forcePolling(): void {
  polling = true;
}

export const pollingForced = () => polling;

/**
 * One inotify instance per process, reused by every wait: closing an instance waits for an
 * SRCU grace period in the kernel (bench/TUNING.md), which must not sit between winning a
 * slot and running the command.
 */
let sharedInotify: number | undefined;

/**
 * Closes this realm's inotify instance, for a thread that ends (a Worker's descriptors are
 * the process's: they outlive it). The next waiter makes a new one.
 */
export function closeSharedWaker(): void {
  if (sharedInotify === undefined) return;
  close(sharedInotify);
  sharedInotify = undefined;
}

export function createWaker(kind: "inotify" | "backoff" = polling ? "backoff" : platform.waker): Waker {
  if (kind === "inotify") {
    if (sharedInotify === undefined) {
      const ifd = inotifyInit();
      if (ifd >= 0) sharedInotify = ifd;
      else debug(`inotify unavailable (${strerror(ifd)}); polling with backoff`);
    }
    if (sharedInotify !== undefined) return new InotifyWaker(sharedInotify);
  }
  debug(`waiting by polling (every 10 ms, doubling to ${RECHECK_MS} ms)`);
  return new BackoffWaker();
}
