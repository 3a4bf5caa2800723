// The description of a slot's holder, stored inside its slot file. The kernel lock on the
// file decides who holds the slot; these bytes only say who that is.
//
// Version-1 binary layout, little-endian:
//   0 magic u32 "WALK"   4 version u32   8 pid u32   12 owner u32   16 uid u32
//  20 acquired_at u64 (Unix seconds)    28 type u32 (0 mutex, 1 semaphore)
//  32 max_holders u32   36 slot u32     40 hostname[256]   296 descriptor[256]
// 552 command[4096]   4648 crc32 of bytes 0..4647            (4652 bytes in all)

export const MAGIC = 0x57414c4b;
export const VERSION = 1;

const HOST = 40;
const DESCRIPTOR = HOST + 256;
const COMMAND = DESCRIPTOR + 256;
const CRC = COMMAND + 4096;
export const RECORD_SIZE = CRC + 4;

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

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export const crc32 = (bytes: Uint8Array): number => Bun.hash.crc32(bytes) >>> 0;

/** Writes `text` NUL-padded into `size` bytes, cut at a character boundary. */
function putString(out: Uint8Array, offset: number, size: number, text: string): void {
  const { written } = encoder.encodeInto(text.replaceAll("\0", " "), out.subarray(offset, offset + size - 1));
  out.fill(0, offset + written, offset + size);
}

function getString(bytes: Uint8Array, offset: number, size: number): string | null {
  const field = bytes.subarray(offset, offset + size);
  const end = field.indexOf(0);
  if (end < 0) return null;
  if (field.subarray(end).some((b) => b !== 0)) return null;
  try {
    return decoder.decode(field.subarray(0, end));
  } catch {
    return null;
  }
}

export function encodeRecord(r: LockRecord): Uint8Array {
  const out = new Uint8Array(RECORD_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, VERSION, true);
  v.setUint32(8, r.pid, true);
  v.setUint32(12, r.owner, true);
  v.setUint32(16, r.uid, true);
  v.setBigUint64(20, BigInt(Math.max(0, Math.floor(r.acquiredAt))), true);
  v.setUint32(28, r.type === "semaphore" ? 1 : 0, true);
  v.setUint32(32, r.maxHolders, true);
  v.setUint32(36, r.slot, true);
  putString(out, HOST, 256, r.hostname);
  putString(out, DESCRIPTOR, 256, r.descriptor);
  putString(out, COMMAND, 4096, r.command);
  v.setUint32(CRC, crc32(out.subarray(0, CRC)), true);
  return out;
}

/** A record, or null when the bytes are not a whole, intact version-1 record. */
export function decodeRecord(bytes: Uint8Array): LockRecord | null {
  if (bytes.byteLength !== RECORD_SIZE) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== MAGIC || v.getUint32(4, true) !== VERSION) return null;
  if (v.getUint32(CRC, true) !== crc32(bytes.subarray(0, CRC))) return null;
  const type = v.getUint32(28, true);
  const maxHolders = v.getUint32(32, true);
  const slot = v.getUint32(36, true);
  if (type > 1 || maxHolders < 1 || slot >= maxHolders) return null;
  const hostname = getString(bytes, HOST, 256);
  const descriptor = getString(bytes, DESCRIPTOR, 256);
  const command = getString(bytes, COMMAND, 4096);
  if (hostname === null || descriptor === null || command === null) return null;
  return {
    pid: v.getUint32(8, true),
    owner: v.getUint32(12, true),
    uid: v.getUint32(16, true),
    acquiredAt: Number(v.getBigUint64(20, true)),
    type: type === 1 ? "semaphore" : "mutex",
    maxHolders,
    slot,
    hostname,
    descriptor,
    command,
  };
}
