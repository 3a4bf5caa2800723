// The description of a slot's holder, stored inside its slot file. The kernel lock on the
// file decides who holds the slot; these bytes only say who that is, and are never trusted
// unless they decode whole with a matching checksum.
//
// Version-1 binary layout, little-endian:
//   0 magic u32 "WALK"   4 version u32   8 pid u32   12 owner u32   16 uid u32
//  20 acquired_at u64 (Unix seconds)    28 type u32 (0 mutex, 1 semaphore)
//  32 max_holders u32   36 slot u32     40 hostname[256]   296 descriptor[256]
// 552 command[4096]   4648 crc32 of bytes 0..4647            (4652 bytes in all)
// The descriptor is the NAME, or for a file locked with --file or --fd its absolute path
// (cut to 255 bytes). Shared holders and file locks keep records in holderfiles.ts's files.
//
// Text form (the fallback): KEY=VALUE lines in TEXT_KEYS order, values escaped, ending
// with CHECKSUM=<crc32 of every byte before that line, 8 lowercase hex digits>.
import { onlyNameChars } from "./names";

const MAGIC = 0x57414c4b;
const RECORD_VERSION = 1;

const HOST = 40;
const DESCRIPTOR = HOST + 256;
const COMMAND = DESCRIPTOR + 256;
const CRC = COMMAND + 4096;
export const RECORD_SIZE = CRC + 4;
/** The most a reader takes from a slot file: a text record of escaped fields fits. */
export const MAX_RECORD_BYTES = 32 * 1024;

export interface LockRecord {
  pid: number;
  owner: number;
  uid: number;
  /** Unix seconds */
  acquiredAt: number;
  type: "mutex" | "semaphore";
  maxHolders: number;
  slot: number;
  hostname: string;
  descriptor: string;
  command: string;
}

export type Decoded = { record: LockRecord; format: "binary" | "text" } | { corrupt: string };

const encoder = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true });

export const crc32 = (bytes: Uint8Array): number => Bun.hash.crc32(bytes) >>> 0;

const U32 = 0xffffffff;

/** `text` as UTF-8 in at most `max` bytes, cut at a character boundary, NULs blanked. */
function clip(text: string, max: number): Uint8Array {
  const out = new Uint8Array(max);
  const { written } = encoder.encodeInto(text.replaceAll("\0", " "), out);
  return out.subarray(0, written);
}

/** The record as the binary form would store it: the text form carries the same values. */
function normalized(r: LockRecord): LockRecord {
  const fit = (s: string, size: number) => new TextDecoder().decode(clip(s, size - 1));
  return { ...r, acquiredAt: Math.max(0, Math.floor(r.acquiredAt)), hostname: fit(r.hostname, 256), descriptor: fit(r.descriptor, 256), command: fit(r.command, 4096) };
}

function getString(bytes: Uint8Array, offset: number, size: number): string | null {
  const field = bytes.subarray(offset, offset + size);
  const end = field.indexOf(0);
  if (end < 0) return null;
  for (let i = end; i < field.length; i++) if (field[i] !== 0) return null;
  try {
    return strict.decode(field.subarray(0, end));
  } catch {
    return null;
  }
}

/** Writes `text` into a zeroed field of `size` bytes, leaving at least one NUL. */
function putString(out: Uint8Array, offset: number, size: number, text: string): void {
  // encodeInto never splits a character, so a long value is cut at a boundary.
  encoder.encodeInto(text.includes("\0") ? text.replaceAll("\0", " ") : text, out.subarray(offset, offset + size - 1));
}

export function encodeRecord(r: LockRecord): Uint8Array {
  const out = new Uint8Array(RECORD_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, RECORD_VERSION, true);
  v.setUint32(8, r.pid, true);
  v.setUint32(12, r.owner, true);
  v.setUint32(16, r.uid, true);
  // Two halves rather than setBigUint64: a BigInt is one more kind of GC cell to set up.
  // Whole seconds, 0 at least, without `Math` (bench/TUNING.md, twelfth round).
  const acquired = r.acquiredAt > 0 ? r.acquiredAt - (r.acquiredAt % 1) : 0;
  const low = acquired % 2 ** 32;
  v.setUint32(20, low, true);
  v.setUint32(24, (acquired - low) / 2 ** 32, true);
  v.setUint32(28, r.type === "semaphore" ? 1 : 0, true);
  v.setUint32(32, r.maxHolders, true);
  v.setUint32(36, r.slot, true);
  putString(out, HOST, 256, r.hostname);
  putString(out, DESCRIPTOR, 256, r.descriptor);
  putString(out, COMMAND, 4096, r.command);
  v.setUint32(CRC, crc32(out.subarray(0, CRC)), true);
  return out;
}

/** Checks that do not depend on the form the record came in. */
function sane(r: LockRecord): string | null {
  if (r.maxHolders < 1 || r.slot >= r.maxHolders) return `slot ${r.slot} of ${r.maxHolders}`;
  const d = r.descriptor;
  // A NAME, or the absolute path of a file locked with --file or --fd.
  const name = onlyNameChars(d) && d !== "." && d !== "..";
  if (d.length < 1 || d.length > 255 || !(name || d.startsWith("/"))) return "bad descriptor";
  return null;
}

function decodeBinary(bytes: Uint8Array): Decoded {
  if (bytes.byteLength < RECORD_SIZE) return { corrupt: `truncated binary record (${bytes.byteLength} of ${RECORD_SIZE} bytes)` };
  if (bytes.byteLength > RECORD_SIZE) return { corrupt: `binary record followed by ${bytes.byteLength - RECORD_SIZE} stray bytes` };
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint32(4, true);
  if (version !== RECORD_VERSION) return { corrupt: `unknown record version ${version}` };
  if (v.getUint32(CRC, true) !== crc32(bytes.subarray(0, CRC))) return { corrupt: "checksum mismatch" };
  const type = v.getUint32(28, true);
  if (type > 1) return { corrupt: `unknown lock type ${type}` };
  const hostname = getString(bytes, HOST, 256);
  const descriptor = getString(bytes, DESCRIPTOR, 256);
  const command = getString(bytes, COMMAND, 4096);
  if (hostname === null || descriptor === null || command === null) return { corrupt: "malformed text field" };
  const record: LockRecord = {
    pid: v.getUint32(8, true),
    owner: v.getUint32(12, true),
    uid: v.getUint32(16, true),
    acquiredAt: Number(v.getBigUint64(20, true)),
    type: type === 1 ? "semaphore" : "mutex",
    maxHolders: v.getUint32(32, true),
    slot: v.getUint32(36, true),
    hostname,
    descriptor,
    command,
  };
  const insane = sane(record);
  return insane ? { corrupt: insane } : { record, format: "binary" };
}

// ---- text form ----

const TEXT_KEYS = ["VERSION", "PID", "PPID", "UID", "ACQUIRED", "TYPE", "MAX_HOLDERS", "SLOT", "HOSTNAME", "DESCRIPTOR", "COMMAND"] as const;

/** Backslash, and every control character, become escapes; everything else stays UTF-8. */
export function escapeValue(s: string): string {
  return s.replace(/[\\\x00-\x1f\x7f]/g, (c) =>
    c === "\\" ? "\\\\" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** The inverse of escapeValue; null for anything escapeValue could not have written. */
export function unescapeValue(s: string): string | null {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c < " " || c === "\x7f") return null;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = s[++i];
    const hex = s.slice(i + 1, i + 3);
    if (e === "\\") out += "\\";
    else if (e === "n") out += "\n";
    else if (e === "r") out += "\r";
    else if (e === "t") out += "\t";
    else if (e === "x" && /^[0-9a-f]{2}$/.test(hex)) {
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else return null;
  }
  return out;
}

export function encodeTextRecord(record: LockRecord): Uint8Array {
  const r = normalized(record);
  const values: Record<(typeof TEXT_KEYS)[number], string> = {
    VERSION: String(RECORD_VERSION),
    PID: String(r.pid),
    PPID: String(r.owner),
    UID: String(r.uid),
    ACQUIRED: String(r.acquiredAt),
    TYPE: r.type,
    MAX_HOLDERS: String(r.maxHolders),
    SLOT: String(r.slot),
    HOSTNAME: escapeValue(r.hostname),
    DESCRIPTOR: escapeValue(r.descriptor),
    COMMAND: escapeValue(r.command),
  };
  const body = encoder.encode(TEXT_KEYS.map((k) => `${k}=${values[k]}\n`).join(""));
  const sum = encoder.encode(`CHECKSUM=${crc32(body).toString(16).padStart(8, "0")}\n`);
  const out = new Uint8Array(body.length + sum.length);
  out.set(body);
  out.set(sum, body.length);
  return out;
}

function decodeText(bytes: Uint8Array): Decoded {
  let text: string;
  try {
    text = strict.decode(bytes);
  } catch {
    return { corrupt: "text record is not UTF-8" };
  }
  const at = text.lastIndexOf("CHECKSUM=");
  const tail = /^CHECKSUM=([0-9a-f]{8})\n$/.exec(text.slice(at));
  if (at <= 0 || text[at - 1] !== "\n" || !tail) return { corrupt: "text record without a valid CHECKSUM line" };
  const body = encoder.encode(text.slice(0, at));
  if (crc32(body) !== parseInt(tail[1]!, 16)) return { corrupt: "checksum mismatch" };
  const lines = text.slice(0, at - 1).split("\n");
  if (lines.length !== TEXT_KEYS.length) return { corrupt: `text record has ${lines.length} fields, not ${TEXT_KEYS.length}` };
  const fields: Record<string, string> = {};
  for (const [i, line] of lines.entries()) {
    const eq = line.indexOf("=");
    if (line.slice(0, eq) !== TEXT_KEYS[i]) return { corrupt: `expected ${TEXT_KEYS[i]} in line ${i + 1}` };
    fields[TEXT_KEYS[i]!] = line.slice(eq + 1);
  }
  const num = (k: string, max = U32) => (/^(0|[1-9]\d{0,15})$/.test(fields[k]!) && Number(fields[k]) <= max ? Number(fields[k]) : null);
  if (num("VERSION") !== RECORD_VERSION) return { corrupt: `unknown record version ${fields.VERSION}` };
  const [pid, owner, uid, acquiredAt, maxHolders, slot] = [num("PID"), num("PPID"), num("UID"), num("ACQUIRED", Number.MAX_SAFE_INTEGER), num("MAX_HOLDERS"), num("SLOT")];
  const [hostname, descriptor, command] = [unescapeValue(fields.HOSTNAME!), unescapeValue(fields.DESCRIPTOR!), unescapeValue(fields.COMMAND!)];
  const type = fields.TYPE;
  if (pid === null || owner === null || uid === null || acquiredAt === null || maxHolders === null || slot === null) return { corrupt: "bad number in text record" };
  if (hostname === null || descriptor === null || command === null) return { corrupt: "bad escape in text record" };
  if (type !== "mutex" && type !== "semaphore") return { corrupt: `unknown lock type ${type}` };
  const record: LockRecord = { pid, owner, uid, acquiredAt, type, maxHolders, slot, hostname, descriptor, command };
  const insane = sane(record);
  return insane ? { corrupt: insane } : { record, format: "text" };
}

const MAGIC_BYTES = [0x4b, 0x4c, 0x41, 0x57];

/** A loop, not `every`: a waiter reads its holder's record on the way to sleep. */
function startsWith(bytes: Uint8Array, prefix: ArrayLike<number>): boolean {
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}
const TEXT_START = encoder.encode("VERSION=");

export function inspectRecord(bytes: Uint8Array): Decoded {
  if (bytes.byteLength === 0) return { corrupt: "empty" };
  if (startsWith(bytes, MAGIC_BYTES)) return decodeBinary(bytes);
  if (startsWith(bytes, TEXT_START)) return decodeText(bytes);
  return { corrupt: "not a waitlock record" };
}

/** A record, or null when the bytes are not a whole, intact version-1 record. */
export function decodeRecord(bytes: Uint8Array): LockRecord | null {
  const d = inspectRecord(bytes);
  return "record" in d ? d.record : null;
}
