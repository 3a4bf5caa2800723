// waitlock --list: who holds what.
import { EXIT, WaitlockError } from "../errors";
import { formatRows, type Row, type Status } from "../format";
import type { Format } from "../options";
import { commandLine, processUid } from "../procinfo";
import { ownerOfHolder } from "./holder";
import type { LockMode } from "../holders";
import type { Decoded, LockRecord } from "../record";
import { viewSlots, type SlotView } from "./scan";

export interface ListOptions {
  format: Format;
  all: boolean;
  staleOnly: boolean;
  name?: string;
  /** --file: only the locks of this file, with every holder the kernel names */
  file?: string;
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

/** Where a row's description comes from: a slot file's own record, a holder file, or none. */
interface Source {
  record: LockRecord | null;
  decoded: Decoded;
  bytes: Uint8Array;
}

const NO_RECORD: Source = { record: null, decoded: { corrupt: "none" }, bytes: new Uint8Array(0) };

/** The row of one process holding (or having held) a lock, described by `source`. */
function rowOf(view: SlotView, source: Source, mode: LockMode | null, status: Status, users: Map<number, string>, pid: number | null, fromKernel: boolean): Row {
  const { file } = view;
  const { record } = source;
  const uid = fromKernel && pid !== null ? (processUid(pid) ?? null) : (record?.uid ?? null);
  // A holder process found without a record: it holds the slot for the owner it was started for.
  const owner = record?.owner ?? (fromKernel && pid !== null ? ownerOfHolder(pid) : undefined) ?? null;
  return {
    descriptor: file.name,
    slot: file.slot,
    status,
    file: file.path,
    mode,
    pid,
    owner,
    uid,
    user: uid === null ? null : (users.get(uid) ?? String(uid)),
    acquired: record?.acquiredAt ?? null,
    type: record?.type ?? null,
    maxHolders: record?.maxHolders ?? null,
    hostname: record?.hostname ?? null,
    command: fromKernel && pid !== null ? commandLine(record || owner === null ? pid : owner) : (record?.command ?? null),
    format: "format" in source.decoded ? source.decoded.format : null,
  };
}

/**
 * The rows of one lock, each with the bytes it was read from. A held lock shows who holds
 * it now: the holders its records name, and the processes the kernel names that no record
 * accounts for (all of them when no record answers: its holder is gone, or wrote none);
 * then (for --all) the stale records of readers that were killed. A free one shows its
 * stale or corrupt records.
 */
function rowsOf(view: SlotView, users: Map<number, string>): { row: Row; bytes: Uint8Array }[] {
  const own: Source = { record: view.record, decoded: view.decoded, bytes: view.bytes };
  // A slot's readers are shared holders; a file's holders share the kernel's one mode.
  const fileMode = view.kind === "slot" ? "shared" : null;
  const rows: { row: Row; bytes: Uint8Array }[] = [];
  const add = (source: Source, mode: LockMode | null, status: Status, pid: number | null, fromKernel = false) =>
    rows.push({ row: rowOf(view, source, mode, status, users, pid, fromKernel), bytes: source.bytes });
  const stale = (source: Source, mode: LockMode | null) => add(source, mode, source.record ? "stale" : "corrupt", source.record?.pid ?? null);
  if (!view.held) {
    if (view.kind === "slot" && (view.bytes.byteLength > 0 || view.holderFiles.length === 0)) stale(own, "exclusive");
    for (const h of view.holderFiles) stale(h, fileMode);
    return rows;
  }
  if (view.recordHolds) add(own, view.mode ?? "exclusive", "active", view.record!.pid);
  for (const h of view.holderFiles) if (h.holds) add(h, view.mode ?? fileMode, "active", h.record!.pid);
  const answered = rows.length > 0;
  // With no record answering, the slot file's own (stale) record still names the owner a
  // killed waitlock --exec held the slot for.
  for (const pid of view.unrecorded) add(answered || view.kind === "file" ? NO_RECORD : own, view.mode, "active", pid, true);
  if (rows.length === 0) add(view.kind === "slot" ? own : NO_RECORD, view.mode, "active", view.kind === "slot" ? (view.record?.pid ?? null) : null);
  for (const h of view.holderFiles) if (!h.holds) stale(h, fileMode);
  return rows;
}

/** What an empty human listing says instead of a bare header (followed by " in DIR"). */
function nothingListed(opts: ListOptions): string {
  const of = opts.file !== undefined ? ` of ${opts.file}` : opts.name === undefined ? "" : ` of '${opts.name}'`;
  if (opts.staleOnly) return `no stale or corrupt records${of}`;
  if (opts.all) return `no locks or records${of}`;
  if (opts.file !== undefined) return `${opts.file} is not held`;
  return opts.name === undefined ? "no locks held" : `'${opts.name}' is not held`;
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
    const select = opts.file !== undefined ? { file: opts.file } : { name: opts.name };
    for (const view of await viewSlots(dir, select)) {
      for (const { row, bytes } of rowsOf(view, users)) {
        const show = opts.staleOnly ? row.status !== "active" : opts.all || row.status === "active";
        if (!show) continue;
        if (opts.format === "json") row.sha256 = await sha256(bytes);
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
