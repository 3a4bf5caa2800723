import { expect, test } from "bun:test";
import { RECORD_SIZE, decodeRecord, encodeRecord, type LockRecord } from "../../src/record";

const sample: LockRecord = {
  pid: 4242, owner: 17, uid: 1000, acquiredAt: 1_795_000_000, type: "semaphore", maxHolders: 4, slot: 3,
  hostname: "build-01", descriptor: "gpu.pool", command: "train --epochs=3 'naïve, \"quoted\"'\nsecond line\\",
};

/** Bitwise CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320): independent of the one under test. */
function referenceCrc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

test("a record round-trips, with magic, version and a CRC-32 over everything before it", () => {
  const bytes = encodeRecord(sample);
  expect(bytes.byteLength).toBe(RECORD_SIZE);
  const v = new DataView(bytes.buffer);
  expect(v.getUint32(0, true)).toBe(0x57414c4b);
  expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe("KLAW");
  expect(v.getUint32(4, true)).toBe(1);
  expect(v.getUint32(RECORD_SIZE - 4, true)).toBe(referenceCrc32(bytes.subarray(0, RECORD_SIZE - 4)));
  expect(decodeRecord(bytes)).toEqual(sample);
});

test("long fields are cut at a character boundary", () => {
  const r = decodeRecord(encodeRecord({ ...sample, command: "é".repeat(3000) }))!;
  expect(r.command).toBe("é".repeat(2047));
});

test("any flipped byte, a short or long buffer, or another version is not a record", () => {
  const bytes = encodeRecord(sample);
  for (let i = 0; i < RECORD_SIZE; i += 37) {
    const bad = bytes.slice();
    bad[i]! ^= 0x40;
    expect(decodeRecord(bad)).toBeNull();
  }
  expect(decodeRecord(bytes.subarray(0, RECORD_SIZE - 1))).toBeNull();
  expect(decodeRecord(new Uint8Array([...bytes, 0]))).toBeNull();
  expect(decodeRecord(new Uint8Array(0))).toBeNull();
});
