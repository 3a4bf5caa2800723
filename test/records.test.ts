// Lock records you can trust: checksummed binary form, text fallback, corruption handling.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { crc32 as wasmCrc32 } from "hash-wasm";
import {
  RECORD_SIZE,
  crc32,
  decodeRecord,
  encodeRecord,
  encodeTextRecord,
  escapeValue,
  inspectRecord,
  unescapeValue,
  type LockRecord,
} from "../src/record";
import { BIN, held, listJson, lockDir, mountNamespace, needs, run, sh, start, tool, waitFor, wl } from "./helpers";

const sample: LockRecord = {
  pid: 31337, owner: 4242, uid: 1000, acquiredAt: 1_795_000_000, type: "semaphore", maxHolders: 8, slot: 5,
  hostname: "host-ä", descriptor: "pool.gpu", command: "run --a=b 'x\\y'\nline two\ttab \u00e9\u4e2d\r",
};

/** A small deterministic PRNG, so that a failure can be replayed. */
function rng(seed: number) {
  return () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 2 ** 32);
}

describe("CRC-32", () => {
  test("the hot path's CRC-32 (Bun.hash.crc32) agrees with hash-wasm byte for byte", async () => {
    const rand = rng(1);
    const inputs = [new Uint8Array(0), new Uint8Array([0]), encodeRecord(sample), encodeTextRecord(sample)];
    for (let i = 0; i < 300; i++) inputs.push(Uint8Array.from({ length: Math.floor(rand() * 5000) }, () => Math.floor(rand() * 256)));
    for (const bytes of inputs) expect(crc32(bytes).toString(16).padStart(8, "0")).toBe(await wasmCrc32(bytes));
  });

  needs(tool("python3"))("an external check (Python's zlib) finds the magic in a held lock's file and verifies its CRC-32", async () => {
    const d = lockDir();
    start([BIN, "-d", d, "-m", "3", "audited", "--exec", "sleep", "30"]);
    await waitFor("record", async () => (await listJson(d)).length === 1);
    const py = `
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
magic, version = struct.unpack_from("<II", data, 0)
stored, = struct.unpack_from("<I", data, len(data) - 4)
assert len(data) == ${RECORD_SIZE}, len(data)
assert magic == 0x57414C4B, hex(magic)
assert zlib.crc32(data[:-4]) & 0xffffffff == stored
pid, owner, uid, acquired, typ, maxh, slot = struct.unpack_from("<IIIQIII", data, 8)
print(version, pid, typ, maxh, slot, data[296:552].rstrip(b"\\0").decode(), data[552:4648].rstrip(b"\\0").decode())
`;
    const r = await run(["python3", "-c", py, `${d}/audited.slot0.lock`]);
    expect(r.stderr).toBe("");
    const [row] = await listJson(d);
    expect(r.stdout).toBe(`1 ${row!.pid} 1 3 0 audited sleep 30\n`);
  });
});

describe("text form", () => {
  test("escapes round-trip newlines, backslashes, '=', control characters and non-ASCII", () => {
    for (const s of ["", "a=b=c", "back\\slash\\", "\n\r\t", "\x00\x01\x7f", "naïve 中文 🎉", "\\n literally", "end\\"]) {
      const e = escapeValue(s);
      expect(e).not.toMatch(/[\n\r\x00-\x1f]/);
      expect(unescapeValue(e)).toBe(s);
    }
    for (const bad of ["\\", "\\q", "\\x4", "\\xZZ", "raw\nnewline"]) expect(unescapeValue(bad)).toBeNull();
  });

  test("a text record round-trips and is accepted wherever a binary one is", () => {
    const text = encodeTextRecord(sample);
    expect(new TextDecoder().decode(text)).toMatch(/^VERSION=1\nPID=31337\nPPID=4242\nUID=1000\nACQUIRED=1795000000\nTYPE=semaphore\nMAX_HOLDERS=8\nSLOT=5\nHOSTNAME=host-ä\nDESCRIPTOR=pool.gpu\nCOMMAND=run --a=b 'x\\\\y'\\nline two\\ttab é中\\r\nCHECKSUM=[0-9a-f]{8}\n$/);
    expect(inspectRecord(text)).toEqual({ record: sample, format: "text" });
    expect(inspectRecord(encodeRecord(sample))).toEqual({ record: sample, format: "binary" });
  });

  test("WAITLOCK_RECORD=text makes holders write the text form", async () => {
    const d = lockDir();
    start([BIN, "-d", d, "t", "--exec", "sleep", "30"], { env: { WAITLOCK_RECORD: "text" } });
    await waitFor("record", async () => (await listJson(d)).length === 1);
    expect((await listJson(d))[0]).toMatchObject({ format: "text", command: "sleep 30", status: "active" });
    expect(readFileSync(`${d}/t.slot0.lock`, "utf8")).toStartWith("VERSION=1\n");
    expect((await wl(["-d", d, "x"], { env: { WAITLOCK_RECORD: "xml" } })).code).toBe(3);
  });

  test("when the binary form cannot be written (file size limit), the text form is written instead", async () => {
    const d = lockDir();
    // 4 blocks of 512 bytes hold the text form but not the 4652-byte binary one.
    const r = await sh(`trap '' XFSZ; ulimit -f 4; exec "$WL" -v -d "$D" small --exec sh -c 'head -c 9 "$D/small.slot0.lock"; echo; wc -c < "$D/small.slot0.lock"'`, d, { deadlineMs: 10_000 });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("writing the text form of the record instead");
    expect(r.stderr).not.toContain("warning");
  });
});

describe("a record that cannot be written", () => {
  const warning = (path: string, why: string) =>
    `waitlock: warning: ${path}: lock held, but its record cannot be written (${why}): --list and --done cannot name the holder\n`;

  test("is said in one warning line, and the lock is held all the same; --quiet silences it", async () => {
    const d = lockDir();
    const hold = (flags: string) => sh(`trap '' XFSZ; ulimit -f 0; exec "$WL" ${flags} -d "$D" big --exec sh -c 'echo "$WAITLOCK_SLOT"'`, d);
    const r = await hold("");
    expect(r).toMatchObject({ code: 0, stdout: "0\n", stderr: warning(`${d}/big.slot0.lock`, "File too large") });
    expect(await hold("-q")).toMatchObject({ code: 0, stdout: "0\n", stderr: "" });
  });

  needs(mountNamespace())("on a full file system, the warning names the cause", async () => {
    const d = lockDir();
    mkdirSync(`${d}/full`);
    const r = await sh(`exec unshare -m sh -c 'mount -t tmpfs -o size=4k tmpfs "$D/full" || exit 99; head -c 8192 /dev/zero > "$D/full/filler" 2>/dev/null; exec "$WL" -d "$D/full" x --exec true'`, d);
    expect(r).toMatchObject({ code: 0, stderr: warning(`${d}/full/x.slot0.lock`, "No space left on device") });
  });
});

describe("corrupt records", () => {
  test("fuzz: thousands of mutated records never crash, hang or decode as valid", () => {
    const rand = rng(7);
    const pick = (n: number) => Math.floor(rand() * n);
    const originals = [encodeRecord(sample), encodeTextRecord(sample), encodeRecord({ ...sample, command: "", hostname: "" }), encodeTextRecord({ ...sample, type: "mutex", maxHolders: 1, slot: 0 })];
    const mutations: ((b: Uint8Array) => Uint8Array)[] = [
      (b) => { const c = b.slice(); const i = pick(c.length); c[i]! ^= 1 << pick(8); return c; },
      (b) => { const c = b.slice(); for (let k = 1 + pick(8); k > 0; k--) c[pick(c.length)] = pick(256); return c; },
      (b) => b.slice(0, pick(b.length)),
      (b) => Uint8Array.from([...b, ...Array.from({ length: 1 + pick(16) }, () => pick(256))]),
      (b) => { const i = pick(b.length); return Uint8Array.from([...b.slice(0, i), pick(256), ...b.slice(i)]); },
      (b) => { const i = pick(b.length); return Uint8Array.from([...b.slice(0, i), ...b.slice(i + 1)]); },
      (b) => { const c = b.slice(); const i = pick(c.length - 8); c.copyWithin(i, pick(c.length - 8), pick(c.length)); return c; },
      (b) => Uint8Array.from({ length: pick(b.length * 2) }, () => pick(256)),
    ];
    const t0 = performance.now();
    let tried = 0;
    for (let n = 0; n < 20_000; n++) {
      const original = originals[n % originals.length]!;
      const mutated = mutations[n % mutations.length]!(original);
      if (mutated.length === original.length && mutated.every((b, i) => b === original[i])) continue;
      tried++;
      const d = inspectRecord(mutated);
      if ("record" in d) throw new Error(`mutation ${n} decoded as valid: ${JSON.stringify(d.record)}`);
      expect(typeof d.corrupt).toBe("string");
    }
    expect(tried).toBeGreaterThan(18_000);
    expect(performance.now() - t0).toBeLessThan(20_000);
  });

  test("a torn write (new record over part of an old one) is corrupt", () => {
    const before = encodeRecord(sample);
    const after = encodeRecord({ ...sample, pid: 1, command: "another holder" });
    for (let cut = 1; cut < RECORD_SIZE; cut += 97) {
      const torn = Uint8Array.from([...after.subarray(0, cut), ...before.subarray(cut)]);
      const same = torn.every((b, i) => b === after[i]) || torn.every((b, i) => b === before[i]);
      if (!same) expect(decodeRecord(torn)).toBeNull();
    }
    const shorter = encodeTextRecord({ ...sample, command: "x" });
    expect(decodeRecord(Uint8Array.from([...shorter, ...encodeTextRecord(sample).subarray(shorter.length)]))).toBeNull();
  });

  test("corrupt records are reported with --verbose, never trusted, and never block -t 2 NAME --exec true", async () => {
    const d = lockDir();
    const bad = encodeRecord({ ...sample, descriptor: "garbled", maxHolders: 1, slot: 0 });
    bad[600]! ^= 0xff;
    writeFileSync(`${d}/garbled.slot0.lock`, bad);
    const list = await wl(["-d", d, "-v", "--list", "--all", "-f", "csv"]);
    expect(list.stdout).toBe("descriptor,pid,slot,user,acquired,status,command\ngarbled,,0,,,corrupt,\n");
    expect(list.stderr).toContain("garbled.slot0.lock: record is corrupt (checksum mismatch)");
    // The record claims a live holder (this process); it decides nothing.
    expect((await wl(["-d", d, "-t", "2", "garbled", "--exec", "true"])).code).toBe(0);
    expect((await wl(["-d", d, "--done", "garbled"])).code).toBe(1);
    expect(existsSync(`${d}/garbled.slot0.lock`)).toBe(false);
  });

  test("a record describing another lock than its file name is corrupt", async () => {
    const d = lockDir();
    writeFileSync(`${d}/mine.slot0.lock`, encodeRecord({ ...sample, descriptor: "theirs", maxHolders: 1, slot: 0 }));
    expect((await listJson(d, ["--all"])).map((r) => r.status)).toEqual(["corrupt"]);
    expect(await held(d, "mine")).toBe(false);
  });
});
