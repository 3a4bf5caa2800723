// A holder's record (record.ts): what a holder writes about itself, the copy an exclusive
// holder keeps in its slot file, and reading one back. The copies of the holders that keep
// theirs apart (shared holders, file locks) are holder files (holderfiles.ts).
import { getuid, hostname } from "../ffi/libc";
import { writeRecord, type Held } from "./engine";
import { debug, warn } from "./log";
import { encodeRecord, encodeTextRecord, inspectRecord, type Decoded, type LockRecord } from "./record";
import type { RecordForm } from "./options";

/**
 * Whole seconds since the epoch. Date.now() counts whole milliseconds, so the division is
 * exact: no `Math.floor`, as --exec names `Math` nowhere (bench/TUNING.md, twelfth round).
 */
function unixSeconds(): number {
  const ms = Date.now();
  return (ms - (ms % 1000)) / 1000;
}

/** A record of holder `pid`; `descriptor` is the NAME, or a locked file's absolute path. */
export function describeHolder(descriptor: string, slots: number, slot: number, pid: number, owner: number, command: string): LockRecord {
  return {
    pid,
    owner,
    uid: getuid(),
    acquiredAt: unixSeconds(),
    type: slots > 1 ? "semaphore" : "mutex",
    maxHolders: slots,
    slot,
    hostname: hostname(),
    descriptor,
    command,
  };
}

/**
 * Writes `record` into the slot file of `held`: binary first; the text form when that
 * cannot be written, or when asked for. When neither can be written (a full disk), one
 * warning: the lock is held all the same, but --list and --done cannot name its holder.
 */
export function storeRecord(held: Held, record: LockRecord, form: RecordForm): void {
  if (form === "binary") {
    if (writeRecord(held, encodeRecord(record)) === null) return;
    debug(`writing the text form of the record instead`);
  }
  const why = writeRecord(held, encodeTextRecord(record));
  if (why !== null) warn(held.path, `lock held, but its record cannot be written (${why}): --list and --done cannot name the holder`);
}

/**
 * What `bytes`, read from the slot or holder file `path`, decode to: with `decode`
 * (record.ts inspectRecord, or a stricter check of it). A debug line says why a record
 * that is there does not decode; an empty file is no record, and says nothing.
 */
export function decodeFrom(path: string, bytes: Uint8Array, decode: (bytes: Uint8Array) => Decoded = inspectRecord): Decoded {
  const d = decode(bytes);
  if ("corrupt" in d && bytes.byteLength > 0) debug(`${path}: record is corrupt (${d.corrupt})`);
  return d;
}

/** The record in `bytes`, read from `path`, or null (decodeFrom). */
export function recordFrom(path: string, bytes: Uint8Array): LockRecord | null {
  const d = decodeFrom(path, bytes);
  return "record" in d ? d.record : null;
}
