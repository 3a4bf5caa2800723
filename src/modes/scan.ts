// The slot files in a lock directory and who holds each, as the kernel says (for --list
// and --done; not on the lock path).
import { inspect } from "../engine";
import { EXIT, WaitlockError } from "../errors";
import { ProcessCache, fileKey, findHolders, readLockTable, type LockTable } from "../holders";
import { debug } from "../log";
import { inspectRecord, type Decoded, type LockRecord } from "../record";

const SLOT_FILE = /^([A-Za-z0-9._-]+)\.slot(\d+)\.lock$/;

export interface SlotFile {
  name: string;
  /** 0-based slot number */
  slot: number;
  path: string;
}

/** The slot files in `dir` (of `onlyName`, if given), by name and slot; [] when `dir` is missing. */
export async function scanSlotFiles(dir: string, onlyName?: string): Promise<SlotFile[]> {
  const { readdirSync } = require("node:fs") as typeof import("node:fs");
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") return [];
    throw new WaitlockError(code === "EACCES" ? EXIT.PERMISSION : EXIT.SYSTEM, dir, `cannot read lock directory: ${(e as Error).message}`);
  }
  const files: SlotFile[] = [];
  for (const entry of entries) {
    const m = SLOT_FILE.exec(entry);
    if (!m || (onlyName !== undefined && m[1] !== onlyName)) continue;
    files.push({ name: m[1]!, slot: Number(m[2]), path: `${dir}/${entry}` });
  }
  return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.slot - b.slot));
}

/** The record in a slot file, trusted only whole and describing this very slot. */
export function slotRecord(file: SlotFile, bytes: Uint8Array): Decoded {
  const d = inspectRecord(bytes);
  if ("record" in d && (d.record.descriptor !== file.name || d.record.slot !== file.slot))
    return { corrupt: `record describes '${d.record.descriptor}' slot ${d.record.slot}` };
  return d;
}

export interface SlotView {
  file: SlotFile;
  held: boolean;
  ino: number;
  /** the stored bytes and what they decode to */
  bytes: Uint8Array;
  decoded: Decoded;
  record: LockRecord | null;
  /**
   * The processes that hold the slot now (empty when free). Where the kernel cannot say,
   * the record's holder if it is still running.
   */
  holders: number[];
  /** the record's holder is among them: it names who holds the slot */
  recordHolds: boolean;
}

/**
 * Every slot file of `dir` (of `onlyName`), with its state and holders. The record's
 * holder, when it is the same process that took the slot and holds it still, answers for
 * the slot; otherwise (it was killed and a descendant holds on, or there is no usable
 * record) the kernel is asked who holds the file. `table`: /proc/locks as read for the
 * same moment's view of the queues (readLockTable()). Each process is looked at once,
 * however many slots it holds.
 */
export async function viewSlots(dir: string, onlyName?: string, table: LockTable | undefined = readLockTable()): Promise<SlotView[]> {
  const locks = table?.granted;
  const processes = new ProcessCache();
  const views: SlotView[] = [];
  const ask = new Map<string, SlotView>();
  for (const file of await scanSlotFiles(dir, onlyName)) {
    let seen;
    try {
      seen = inspect(file.path, true, locks);
    } catch (e) {
      // One unreadable file (a directory, another user's) must not hide the others.
      debug(`${file.path}: ${(e as Error).message}`);
      continue;
    }
    if (seen.state === "absent") continue;
    const decoded = slotRecord(file, seen.bytes!);
    if ("corrupt" in decoded) debug(`${file.path}: record is corrupt (${decoded.corrupt})`);
    const record = "record" in decoded ? decoded.record : null;
    const held = seen.state === "held";
    const view: SlotView = { file, held, ino: seen.ino!, bytes: seen.bytes!, decoded, record, holders: [], recordHolds: false };
    views.push(view);
    if (!held) continue;
    const holds = record && processes.runningSince(record.pid, record.acquiredAt) ? processes.holdsLock(record.pid, seen.dev!, seen.ino!) : false;
    if (record && holds !== false) {
      view.holders = [record.pid];
      view.recordHolds = true;
    } else ask.set(fileKey(seen.dev!, seen.ino!), view);
  }
  if (ask.size > 0) {
    const found = findHolders(new Set(ask.keys()));
    for (const [key, view] of ask) view.holders = found?.get(key)?.map((h) => h.pid) ?? [];
  }
  return views;
}
