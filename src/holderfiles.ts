// Records of holders that cannot keep theirs inside the locked file: the shared holders of a
// slot (several readers cannot all write at offset 0 of one file) and every holder of a
// --file or --fd lock (the user's file is never written). Each writes its version-1 record
// (record.ts) into a file of its own beside the lock, DIR/BASE.ID.holder:
//   BASE  NAME.slotK for the readers of a slot; file@DEV-INO for a file, by its identity
//         (st_dev and st_ino in decimal), whatever path it was reached by
//   ID    8 random hex digits; the file is created exclusively (O_EXCL), never reused
// The kernel lock on the slot or file still decides who holds it: a holder file only says
// who one holder is, and counts only while the process it names holds that lock. Its
// holder removes it before letting go; one left by a killed holder is stale until the next
// process that holds the lock alone removes it (the last reader of a slot on its way out,
// an exclusive holder of a file on its way in).
import { E, O, close, open, pwrite, strerror, unlink } from "../ffi/libc";
import { readRecordBytes } from "./engine";
import { decodeFrom } from "./holderrecord";
import { debug, warn } from "./log";
import { encodeRecord, encodeTextRecord, inspectRecord, type Decoded, type LockRecord } from "./record";
import type { RecordForm } from "./options";

const SUFFIX = ".holder";
const ID_DIGITS = 8;

/** DIR/NAME.slotK: the base of the holder files of a slot's readers. */
export const slotBase = (dir: string, name: string, slot: number) => `${dir}/${name}.slot${slot}`;

/** file@DEV-INO: the name of a locked file's base, from its identity. */
export const fileBaseName = (dev: number, ino: number) => `file@${dev}-${ino}`;

/** DIR/file@DEV-INO: the base of a locked file's turnstile and holder files. */
export const fileBase = (dir: string, dev: number, ino: number) => `${dir}/${fileBaseName(dev, ino)}`;

/** The identity in a file lock's base name ("file@DEV-INO"), or undefined for any other. */
export function identityInBase(baseName: string): { dev: number; ino: number } | undefined {
  const m = /^file@(\d+)-(\d+)$/.exec(baseName);
  return m ? { dev: Number(m[1]), ino: Number(m[2]) } : undefined;
}

function randomId(): string {
  const n = crypto.getRandomValues(new Uint32Array(1))[0]!;
  return (0x100000000 + n).toString(16).slice(1);
}

/** A new holder file's path for `base` (DIR/BASE), not yet created: writeHolderFile() does. */
export const newHolderFile = (base: string) => `${base}.${randomId()}${SUFFIX}`;

/**
 * Creates the holder file `path` (never one that exists) holding `bytes`. null when
 * written, else why not (strerror's words, or a short write): then nothing is left behind.
 */
export function writeHolderFile(path: string, bytes: Uint8Array): string | null {
  const fd = open(path, O.CREAT | O.EXCL | O.WRONLY | O.NOFOLLOW | O.CLOEXEC | O.NONBLOCK, 0o644);
  if (fd < 0) return `cannot create it: ${strerror(fd)}`;
  const w = pwrite(fd, bytes, 0);
  close(fd);
  if (w === bytes.byteLength) return null;
  unlink(path);
  return w < 0 ? strerror(w) : `only ${w} of ${bytes.byteLength} bytes written`;
}

/**
 * The bytes of the holder file `path` (as engine.ts readRecordBytes reads a slot file), or
 * null when it cannot be opened. Never follows a symbolic link, nor hangs on a FIFO,
 * planted under a holder file's name.
 */
export function readHolderFile(path: string): Uint8Array | null {
  const fd = open(path, O.RDONLY | O.NOFOLLOW | O.CLOEXEC | O.NONBLOCK);
  if (fd < 0) {
    debug(`cannot read ${path} (${strerror(fd)})`);
    return null;
  }
  try {
    return readRecordBytes(fd);
  } finally {
    close(fd);
  }
}

/**
 * Writes `record` into the new holder file `path`: binary first, text when that cannot be
 * written or is asked for. false (and a warning, as for a slot file's record) when neither
 * can be.
 */
export function storeInHolderFile(path: string, record: LockRecord, form: RecordForm): boolean {
  if (form === "binary") {
    const why = writeHolderFile(path, encodeRecord(record));
    if (why === null) return true;
    debug(`cannot write the record into ${path} (${why}); writing its text form instead`);
  }
  const why = writeHolderFile(path, encodeTextRecord(record));
  if (why === null) return true;
  warn(path, `lock held, but its record cannot be written (${why}): --list and --done cannot name the holder`);
  return false;
}

/** A holder file as read: its bytes and what they decode to. */
export interface HolderFileRead {
  path: string;
  bytes: Uint8Array;
  decoded: Decoded;
}

/**
 * The holder files `paths` that can be read, in that order, each decoded with `decode`
 * (record.ts inspectRecord, or a stricter check of it); a debug line names each corrupt one.
 */
export function readHolderFiles(paths: string[], decode: (bytes: Uint8Array) => Decoded = inspectRecord): HolderFileRead[] {
  const read: HolderFileRead[] = [];
  for (const path of paths) {
    const bytes = readHolderFile(path);
    if (bytes) read.push({ path, bytes, decoded: decodeFrom(path, bytes, decode) });
  }
  return read;
}

/** The records in the holder files of `base` (DIR/BASE) that decode, each with its file's path. */
export function holderRecords(base: string): { path: string; record: LockRecord }[] {
  const found: { path: string; record: LockRecord }[] = [];
  for (const { path, decoded } of readHolderFiles(holderFilesOf(base))) if ("record" in decoded) found.push({ path, record: decoded.record });
  return found;
}

export function removeHolderFile(path: string): void {
  const r = unlink(path);
  if (r < 0 && r !== -E.ENOENT) debug(`cannot remove ${path} (${strerror(r)}); leaving it`);
}

/** A directory entry that is a holder file: its base name and the entry itself. */
export function parseHolderFile(entry: string): { baseName: string; entry: string } | undefined {
  if (!entry.endsWith(SUFFIX)) return undefined;
  const stem = entry.slice(0, -SUFFIX.length);
  const dot = stem.length - ID_DIGITS - 1;
  if (dot < 1 || stem[dot] !== "." || !/^[0-9a-f]+$/.test(stem.slice(dot + 1))) return undefined;
  return { baseName: stem.slice(0, dot), entry };
}

/** The holder files of `base` (DIR/BASE), by path; [] when the directory cannot be read. */
export function holderFilesOf(base: string): string[] {
  const slash = base.lastIndexOf("/");
  const dir = base.slice(0, slash);
  const baseName = base.slice(slash + 1);
  const { readdirSync } = require("node:fs") as typeof import("node:fs");
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries) if (parseHolderFile(entry)?.baseName === baseName) files.push(`${dir}/${entry}`);
  return files;
}

/**
 * Removes every holder file of `base`. Only for a caller that holds the lock alone, so that
 * every one of them is stale.
 */
export function sweepHolderFiles(base: string): void {
  for (const path of holderFilesOf(base)) {
    removeHolderFile(path);
    debug(`removed the stale record ${path}`);
  }
}
