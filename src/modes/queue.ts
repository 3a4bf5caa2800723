// Who waits for a lock, as the kernel says (for --list; not on the lock path). Every
// acquirer of NAME queues on its turnstile, DIR/NAME.queue.lock (src/engine.ts), with a
// blocking flock(2): the process that holds the turnstile is the head of the queue, served
// next, and the others are the requests the kernel keeps blocked behind it. /proc/locks
// prints those in arrival order (src/holders.ts readLockTable()), and drops a request the
// moment its process dies, so a killed waiter is never listed.
import { fileKey, type LockTable } from "../holders";
import { alive } from "../procinfo";

const QUEUE_FILE = /^([A-Za-z0-9._-]+)\.queue\.lock$/;

export interface QueueView {
  name: string;
  /** the turnstile file */
  path: string;
  /**
   * The waiting processes in queue order, the head (served next) first; null for a process
   * the kernel does not name to us (in another PID namespace).
   */
  waiters: (number | null)[];
}

/**
 * The queue of every NAME in `dir` (only `onlyName`, if given) that has waiters, sorted by
 * name. `table` is /proc/locks as read for the same moment's view of the slots; where
 * there is none (not Linux), waiters cannot be seen and the answer is [].
 */
export function viewQueues(dir: string, onlyName: string | undefined, table: LockTable | undefined): QueueView[] {
  if (!table || table.files.size === 0) return [];
  const { lstatSync, readdirSync } = require("node:fs") as typeof import("node:fs");
  let entries: string[];
  try {
    entries = onlyName === undefined ? readdirSync(dir) : [`${onlyName}.queue.lock`];
  } catch {
    // The slots' scan of the same directory reports why it cannot be read.
    return [];
  }
  const queues: QueueView[] = [];
  for (const entry of entries) {
    const m = QUEUE_FILE.exec(entry);
    if (!m) continue;
    const path = `${dir}/${entry}`;
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isFile()) continue;
    const locks = table.files.get(fileKey(st.dev, st.ino));
    if (!locks) continue;
    // A process that has exited is no waiter: the kernel drops a blocked request at once,
    // but a PID may come from the earlier of two readings (readLockTable()), and the
    // process that took the turnstile may have left it to a descendant.
    const waiters = [locks.granted[0]!, ...locks.blocked].flatMap((pid) => (pid <= 0 ? [null] : alive(pid) ? [pid] : []));
    if (waiters.length > 0) queues.push({ name: m[1]!, path, waiters });
  }
  return queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
