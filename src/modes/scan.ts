// Finding the slot files in a lock directory (for --list and --done; not on the lock path).
import { EXIT, WaitlockError } from "../errors";
import { inspectRecord, type Decoded } from "../record";
import { runtimeError } from "../syserror";

const SLOT_FILE = /^([A-Za-z0-9._-]+)\.slot(\d+)\.lock$/;

export interface SlotFile {
  name: string;
  slot: number;
  path: string;
}

export async function scanSlotFiles(dir: string, onlyName?: string): Promise<SlotFile[]> {
  const { readdirSync } = require("node:fs") as typeof import("node:fs");
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return [];
    const doing = "cannot read lock directory";
    throw runtimeError(dir, e, doing) ?? new WaitlockError(EXIT.SYSTEM, dir, `${doing}: ${(e as Error).message}`);
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
