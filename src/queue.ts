// Who waits for a lock, as the kernel says (for --list; not on the lock path). Every
// acquirer of NAME holds the node of its ticket, DIR/NAME.qTTTTTTTT.lock (src/turnstile.ts),
// locked exclusively from the moment it joins the queue until it leaves it: the waiters
// are the nodes whose lock the kernel shows granted, in ticket order, which is arrival
// order; the first is the head, served next. A waiter that dies drops its lock at once,
// so it is never listed. A file's waiters (--file, --fd) queue the same way under the
// file's identity, DIR/file@DEV-INO.qTTTTTTTT.lock. A node is made (O_EXCL) when its waiter
// joins the queue and never written: its modification time is when that waiter joined.
import { fileKey, type LockTable } from "./holders";
import { ticketOf } from "./turnstile";
import { alive } from "./procinfo";

const NODE_FILE = /^([A-Za-z0-9._-]+|file@\d+-\d+)\.q[0-9a-z]{8}\.lock$/;

/** The base of a queue node's file name: a NAME, or a file's "file@DEV-INO"; undefined for any other entry. */
export const queueBaseOf = (entry: string): string | undefined => NODE_FILE.exec(entry)?.[1];

export interface Waiter {
  /** the process (null when the kernel does not name it to us: another PID namespace) */
  pid: number | null;
  /** its node file */
  path: string;
  /** when it joined the queue, Unix seconds (its node's modification time) */
  since: number;
}

export interface QueueView {
  /** the base of its files: a NAME, or "file@DEV-INO" for a file locked with --file or --fd */
  name: string;
  /** the waiters in queue order, the head (served next) first */
  waiters: Waiter[];
}

/**
 * The queue of every lock in `dir` (only the one whose base is `onlyBase`, if given: a NAME
 * or "file@DEV-INO") that has waiters, sorted by base. `table` is /proc/locks as read for
 * the same moment's view of the slots; where there is none (not Linux), waiters cannot be
 * seen and the answer is [].
 */
export function viewQueues(dir: string, onlyBase: string | undefined, table: LockTable | undefined): QueueView[] {
  if (!table || table.files.size === 0) return [];
  const { lstatSync, readdirSync } = require("node:fs") as typeof import("node:fs");
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    // The slots' scan of the same directory reports why it cannot be read.
    return [];
  }
  const nodes = new Map<string, (Waiter & { ticket: number })[]>();
  for (const entry of entries) {
    const m = NODE_FILE.exec(entry);
    if (!m || (onlyBase !== undefined && m[1] !== onlyBase)) continue;
    const path = `${dir}/${entry}`;
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isFile()) continue;
    const locks = table.files.get(fileKey(st.dev, st.ino));
    // A node nobody holds is a waiter's that was served or left.
    const pid = locks?.granted[0];
    if (pid === undefined) continue;
    // The kernel names the process that took the lock; a PID may come from the earlier of
    // two readings (readLockTable()) of a process that has exited since.
    if (pid > 0 && !alive(pid)) continue;
    const list = nodes.get(m[1]!) ?? [];
    list.push({ ticket: ticketOf(entry)!, path, pid: pid > 0 ? pid : null, since: st.mtimeMs / 1000 });
    nodes.set(m[1]!, list);
  }
  const queues: QueueView[] = [];
  for (const [name, list] of nodes) {
    list.sort((a, b) => a.ticket - b.ticket);
    queues.push({ name, waiters: list.map(({ pid, path, since }) => ({ pid, path, since })) });
  }
  return queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
