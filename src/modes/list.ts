// waitlock --list: who holds what.
import { inspect, type Inspection } from "../engine";
import { debug } from "../log";
import { EXIT, WaitlockError } from "../errors";
import { formatRows, type Row } from "../format";
import type { Format } from "../options";
import { scanSlotFiles, slotRecord } from "./scan";

export interface ListOptions {
  format: Format;
  all: boolean;
  staleOnly: boolean;
  name?: string;
}

/**
 * A fingerprint of the stored record for audit trails. Loaded with require(), so that only
 * `-f json` evaluates it: the CommonJS wrapper runs on first call.
 */
async function sha256(bytes: Uint8Array): Promise<string> {
  // The per-algorithm build: the full index bundles every algorithm's WebAssembly (284 KB of
  // source that the compiled binary carries and pages in at every start).
  const { sha256: hash } = require("hash-wasm/dist/sha256.umd.min.js") as typeof import("hash-wasm");
  return hash(bytes);
}

async function userNames(): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  try {
    const { readFileSync } = require("node:fs") as typeof import("node:fs");
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [user, , uid] = line.split(":");
      if (user && uid && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), user);
    }
  } catch {
    // No passwd file: users are shown by number.
  }
  return names;
}

/** `lockDir` is resolved inside, so that a directory problem is also exit 1. */
export async function listLocks(lockDir: () => string, opts: ListOptions): Promise<number> {
  // The executable starts with the JIT held back (package.json: --compile-jit-policy), as
  // compiling run-once code costs more than it saves; a listing of many slots is real work.
  Bun.unsafe.setJITPolicy(1);
  try {
    const dir = lockDir();
    const users = await userNames();
    const rows: Row[] = [];
    for (const file of await scanSlotFiles(dir, opts.name)) {
      let seen: Inspection;
      try {
        seen = inspect(file.path, true);
      } catch (e) {
        // One unreadable file (a directory, another user's) must not hide the others.
        debug(`${file.path}: ${(e as Error).message}`);
        seen = { state: "free", bytes: new Uint8Array(0) };
      }
      if (seen.state === "absent") continue;
      const decoded = slotRecord(file, seen.bytes!);
      if ("corrupt" in decoded) debug(`${file.path}: record is corrupt (${decoded.corrupt})`);
      const record = "record" in decoded ? decoded.record : null;
      const status = !record ? "corrupt" : seen.state === "held" ? "active" : "stale";
      const show = opts.staleOnly ? status !== "active" : opts.all || status === "active";
      if (!show) continue;
      rows.push({
        descriptor: file.name,
        slot: file.slot,
        status,
        file: file.path,
        pid: record?.pid ?? null,
        owner: record?.owner ?? null,
        uid: record?.uid ?? null,
        user: record ? (users.get(record.uid) ?? String(record.uid)) : null,
        acquired: record?.acquiredAt ?? null,
        type: record?.type ?? null,
        maxHolders: record?.maxHolders ?? null,
        hostname: record?.hostname ?? null,
        command: record?.command ?? null,
        format: "format" in decoded ? decoded.format : null,
        ...(opts.format === "json" ? { sha256: await sha256(seen.bytes!) } : {}),
      });
    }
    await Bun.write(Bun.stdout, formatRows(rows, opts.format, opts.all || opts.staleOnly));
    return EXIT.OK;
  } catch (e) {
    // Out of descriptors is 75 in every mode: retrying can succeed, and it is no answer.
    if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE && e.exitCode !== EXIT.TEMPFAIL) throw new WaitlockError(EXIT.BUSY, e.context, e.message);
    throw e;
  }
}
