// waitlock --list: who holds what.
import { EXIT, WaitlockError } from "../errors";
import { formatRows, type Row, type Status } from "../format";
import type { Format } from "../options";
import { commandLine, processUid } from "../procinfo";
import { ownerOfHolder } from "./holder";
import { viewSlots, type SlotView } from "./scan";

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

/** What an empty human listing says instead of a bare header (followed by " in DIR"). */
function nothingListed(opts: ListOptions): string {
  const of = opts.name === undefined ? "" : ` of '${opts.name}'`;
  if (opts.staleOnly) return `no stale or corrupt records${of}`;
  if (opts.all) return `no locks or records${of}`;
  return opts.name === undefined ? "no locks held" : `'${opts.name}' is not held`;
}

/** The row of one process holding (or having held) a slot. */
function rowOf(view: SlotView, status: Status, users: Map<number, string>, pid: number | null, fromKernel: boolean): Row {
  const { file, record } = view;
  const uid = fromKernel && pid !== null ? (processUid(pid) ?? null) : (record?.uid ?? null);
  // A holder process found without a record: it holds the slot for the owner it was started for.
  const owner = record?.owner ?? (fromKernel && pid !== null ? ownerOfHolder(pid) : undefined) ?? null;
  return {
    descriptor: file.name,
    slot: file.slot,
    status,
    file: file.path,
    pid,
    owner,
    uid,
    user: uid === null ? null : (users.get(uid) ?? String(uid)),
    acquired: record?.acquiredAt ?? null,
    type: record?.type ?? null,
    maxHolders: record?.maxHolders ?? null,
    hostname: record?.hostname ?? null,
    command: fromKernel && pid !== null ? commandLine(record || owner === null ? pid : owner) : (record?.command ?? null),
    format: "format" in view.decoded ? view.decoded.format : null,
  };
}

/**
 * The rows of one slot: a held slot shows who holds it now (the record's holder, or the
 * processes the kernel names when that one is gone); a free one its stale or corrupt record.
 */
function rowsOf(view: SlotView, users: Map<number, string>): Row[] {
  if (!view.held) return [rowOf(view, view.record ? "stale" : "corrupt", users, view.record?.pid ?? null, false)];
  if (view.recordHolds || view.holders.length === 0) return [rowOf(view, "active", users, view.record?.pid ?? null, false)];
  return view.holders.map((pid) => rowOf(view, "active", users, pid, true));
}

/**
 * The rows --list shows for `opts` (the format only decides whether records are fingerprinted)
 * of the lock directory `dir` (undefined: it does not exist). Throws WaitlockError 1 when
 * the directory or its files cannot be read.
 */
export async function listRows(dir: string | undefined, opts: ListOptions): Promise<Row[]> {
  try {
    const users = await userNames();
    const rows: Row[] = [];
    for (const view of dir === undefined ? [] : await viewSlots(dir, opts.name)) {
      for (const row of rowsOf(view, users)) {
        const show = opts.staleOnly ? row.status !== "active" : opts.all || row.status === "active";
        if (!show) continue;
        if (opts.format === "json") row.sha256 = await sha256(view.bytes);
        rows.push(row);
      }
    }
    return rows;
  } catch (e) {
    if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE) throw new WaitlockError(EXIT.BUSY, e.context, e.message);
    throw e;
  }
}

/** `lockDir` is resolved inside, so that a directory problem is also exit 1. */
export async function listLocks(lockDir: () => string | undefined, opts: ListOptions): Promise<number> {
  // The executable starts with the JIT held back (package.json: --compile-jit-policy), as
  // compiling run-once code costs more than it saves; a listing of many slots is real work.
  Bun.unsafe.setJITPolicy(1);
  let dir: string | undefined;
  try {
    dir = lockDir();
  } catch (e) {
    if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE) throw new WaitlockError(EXIT.BUSY, e.context, e.message);
    throw e;
  }
  const rows = await listRows(dir, opts);
  // A person reading an empty table should not have to guess: the machine formats stay bare.
  const where = dir === undefined ? " (the lock directory does not exist)" : ` in ${dir}`;
  const listing = rows.length === 0 && opts.format === "human" ? `${nothingListed(opts)}${where}\n` : formatRows(rows, opts.format, opts.all || opts.staleOnly);
  await Bun.write(Bun.stdout, listing);
  return EXIT.OK;
}
