// Who waits for a lock, as the kernel says (for --list; not on the lock path). Every
// acquirer of NAME holds the node of its ticket, DIR/NAME.qTTTTTTTT.lock (src/turnstile.ts),
// locked exclusively from the moment it joins the queue until it leaves it: the waiters
// are the nodes whose lock the kernel shows granted, in ticket order, which is arrival
// order; the first is the head, served next. A waiter that dies drops its lock at once,
// so it is never listed.
import { fileKey, type LockTable } from "../holders";
import { ticketOf } from "../turnstile";
import { alive } from "../procinfo";

const NODE_FILE = /^([A-Za-z0-9._-]+)\.q[0-9a-z]{8}\.lock$/;

export interface QueueView {
  name: string;
  /**
   * The waiters in queue order, the head (served next) first: the process (null when the
   * kernel does not name it to us: another PID namespace), its node file, and when it
   * joined the queue (Unix seconds: the node's mtime; the node is made when its waiter
   * joins and never written, so this is the wait's start even for a process that has
   * waited for other locks before, such as a --serve coprocess).
   */
  waiters: { pid: number | null; path: string; since: number }[];
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
    entries = readdirSync(dir);
  } catch {
    // The slots' scan of the same directory reports why it cannot be read.
    return [];
  }
  const nodes = new Map<string, { ticket: number; path: string; pid: number | null; since: number }[]>();
  for (const entry of entries) {
    const m = NODE_FILE.exec(entry);
    if (!m || (onlyName !== undefined && m[1] !== onlyName)) continue;
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
