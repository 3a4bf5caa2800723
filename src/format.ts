// --list output formats. Pure functions of the rows, so that they can be tested alone.
import type { LockMode } from "./holders";
import type { Format } from "./options";
import { oneLine } from "./holdertext";
import { duration } from "./statusline";

export type Status = "active" | "stale" | "corrupt";

export interface Row {
  /** the NAME, or the path of a file locked with --file or --fd */
  descriptor: string;
  slot: number;
  status: Status;
  /** the slot file, or the locked file */
  file: string;
  /** how this holder holds it: exclusive, or shared (a reader); null where that is not known */
  mode: LockMode | null;
  /** the fields below are null for a corrupt record */
  pid: number | null;
  owner: number | null;
  uid: number | null;
  user: string | null;
  /** Unix seconds */
  acquired: number | null;
  type: "mutex" | "semaphore" | null;
  maxHolders: number | null;
  hostname: string | null;
  command: string | null;
  /** the form the record was stored in */
  format: "binary" | "text" | null;
  /** SHA-256 of the stored record bytes (json only; null when none is stored) */
  sha256?: string | null;
  /** --backend: the lease's fencing token (null: not described) */
  token?: string | null;
  /** --backend redis://: seconds left on the lease before the engine frees it unrenewed */
  expiresIn?: number | null;
}

/**
 * A process waiting for a lock. No record is kept for a waiter in the lock directory: this is
 * what the kernel and /proc say; on a network engine, the description the waiter left there.
 */
export interface WaiterRow {
  descriptor: string;
  status: "waiting";
  /** place in the queue, 1-based: 1 is served next */
  position: number;
  /** its node in the lock's queue (src/turnstile.ts); on a network engine, its URL */
  file: string;
  /** null: a process the kernel does not name to us (another PID namespace) */
  pid: number | null;
  uid: number | null;
  user: string | null;
  /** Unix seconds: when it joined the queue (its node's modification time; on an engine, the server's clock) */
  waitingSince: number | null;
  /** the host the waiter runs on */
  hostname: string | null;
  command: string | null;
  /** --backend: the engine's id of the waiting session (PostgreSQL: the backend's PID; Redis: the client id) */
  session?: number;
}

/** What --list shows: holders and stale or corrupt records (one row per slot or holder), and waiters. */
export interface Listing {
  holders: Row[];
  waiters: WaiterRow[];
  /** the locks of a network engine: csv and null add host and token, also when nothing is listed */
  network?: boolean;
}

/** How the human tables are drawn. */
export interface HumanStyle {
  /** with a STATUS column (--all, --stale-only) */
  withStatus?: boolean;
  /** Unix seconds: with HELD and WAITED columns measured up to this moment (the --watch view) */
  now?: number;
}

const text = (v: string | number | null) => (v === null ? "" : String(v));

/** Unix seconds as local time, `2025-06-01 12:00:00`; "-" for null. */
export function localTime(seconds: number | null): string {
  if (seconds === null) return "-";
  const d = new Date(seconds * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** RFC 4180: quote a field holding a comma, quote or line break; double its quotes. */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

const since = (from: number | null, now: number | undefined) => (from === null || now === undefined ? "-" : duration(now - from));

/**
 * The seven fields of csv and null (a network engine's rows add host and token). A waiting row keeps the layout: its queue position
 * (1 = next) stands in the slot field and the time it has waited since (whole Unix
 * seconds, as acquired) in the acquired one.
 */
function seven(r: Row | WaiterRow): string[] {
  if (r.status === "waiting") {
    const since = r.waitingSince === null ? null : Math.floor(r.waitingSince);
    return [r.descriptor, text(r.pid), String(r.position), text(r.user), text(since), r.status, text(r.command)];
  }
  return [r.descriptor, text(r.pid), String(r.slot), text(r.user), text(r.acquired), r.status, text(r.command)];
}

/**
 * Holders and waiters in one sequence: each NAME's holders as given, then its waiters in
 * queue order; the waiters of a NAME nobody holds where its name sorts among the holders'.
 */
export function byName(listing: Listing): (Row | WaiterRow)[] {
  const waiting = new Map<string, WaiterRow[]>();
  for (const w of listing.waiters) {
    const queue = waiting.get(w.descriptor);
    if (queue) queue.push(w);
    else waiting.set(w.descriptor, [w]);
  }
  const out: (Row | WaiterRow)[] = [];
  const flush = (name: string) => {
    out.push(...(waiting.get(name) ?? []));
    waiting.delete(name);
  };
  listing.holders.forEach((row, i) => {
    const previous = listing.holders[i - 1]?.descriptor;
    if (row.descriptor !== previous) {
      if (previous !== undefined) flush(previous);
      for (const name of [...waiting.keys()]) if (name < row.descriptor) flush(name);
    }
    out.push(row);
  });
  const last = listing.holders.at(-1)?.descriptor;
  if (last !== undefined) flush(last);
  for (const name of [...waiting.keys()]) flush(name);
  return out;
}

/** Columns padded to their widest cell, two spaces apart; the last one (a command) left ragged. */
function table(header: string[], cells: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), ...cells.map(line)];
}

/** A command on one line, for a terminal, never cut (the last column is left ragged). */
const commandCell = (command: string | null) => oneLine(command ?? "", Infinity);

function holderTable(rows: Row[], style: HumanStyle): string[] {
  const held = style.now !== undefined;
  // Holders on a network engine run on many hosts and carry a fencing token.
  const remote = rows.some((r) => r.token !== undefined);
  const leased = rows.some((r) => r.expiresIn !== undefined);
  const header = [
    "DESCRIPTOR", "SLOT", "MODE", ...(remote ? ["HOST"] : []), "PID", "OWNER", "USER", "ACQUIRED",
    ...(held ? ["HELD"] : []), ...(remote ? ["TOKEN"] : []), ...(leased ? ["EXPIRES IN"] : []), ...(style.withStatus ? ["STATUS"] : []), "COMMAND",
  ];
  const cells = rows.map((r) => [
    r.descriptor,
    r.maxHolders === null ? String(r.slot) : `${r.slot}/${r.maxHolders}`,
    r.mode ?? "-",
    ...(remote ? [r.hostname ?? "-"] : []),
    r.pid === null ? "-" : String(r.pid),
    r.owner === null ? "-" : String(r.owner),
    r.user ?? "-",
    localTime(r.acquired),
    ...(held ? [r.status === "active" ? since(r.acquired, style.now) : "-"] : []),
    ...(remote ? [r.token ?? "-"] : []),
    ...(leased ? [r.expiresIn === null || r.expiresIn === undefined ? "-" : `${r.expiresIn.toFixed(1)}s`] : []),
    ...(style.withStatus ? [r.status] : []),
    commandCell(r.command),
  ]);
  return table(header, cells);
}

function waiterTable(rows: WaiterRow[], style: HumanStyle): string[] {
  const waited = style.now !== undefined;
  // Waiters on a network engine run on many hosts.
  const remote = rows.some((r) => r.session !== undefined);
  const header = ["DESCRIPTOR", "POSITION", ...(remote ? ["HOST"] : []), "PID", "USER", "WAITING SINCE", ...(waited ? ["WAITED"] : []), "COMMAND"];
  const cells = rows.map((r) => [
    r.descriptor,
    String(r.position),
    ...(remote ? [r.hostname ?? "-"] : []),
    r.pid === null ? "-" : String(r.pid),
    r.user ?? "-",
    localTime(r.waitingSince === null ? null : Math.floor(r.waitingSince)),
    ...(waited ? [since(r.waitingSince, style.now)] : []),
    commandCell(r.command),
  ]);
  return table(header, cells);
}

/**
 * The human form, as lines: a table of holders (and records), then, after a blank line,
 * one of waiters. Without waiters there is no second table; without holders but with
 * waiters, no first one.
 */
export function humanLines(listing: Listing, style: HumanStyle = {}): string[] {
  const parts: string[][] = [];
  if (listing.holders.length > 0 || listing.waiters.length === 0) parts.push(holderTable(listing.holders, style));
  if (listing.waiters.length > 0) parts.push(waiterTable(listing.waiters, style));
  return parts.flatMap((lines, i) => (i === 0 ? lines : ["", ...lines]));
}

/** csv, null and json: holders and waiters (each NAME's holders, then its waiters); human: humanLines(). */
export function formatRows(rows: Row[], format: Exclude<Format, "prometheus">, withStatus = false, waiters: WaiterRow[] = [], network = false): string {
  const listing = { holders: rows, waiters };
  // A network engine's holders and waiters run on many hosts, and holders carry a fencing
  // token: two fields more (a waiter's token empty).
  const fields = (r: Row | WaiterRow) => (network ? [...seven(r), text(r.hostname), r.status === "waiting" ? "" : text(r.token ?? null)] : seven(r));
  switch (format) {
    case "human":
      return humanLines(listing, { withStatus }).join("\n") + "\n";
    case "csv":
      return [`descriptor,pid,slot,user,acquired,status,command${network ? ",host,token" : ""}`, ...byName(listing).map((r) => fields(r).map(csvField).join(","))].join("\n") + "\n";
    case "null":
      return byName(listing).map((r) => fields(r).map((f) => `${f}\0`).join("")).join("");
    case "json":
      return JSON.stringify(byName(listing), null, 2) + "\n";
  }
}
