// --list output formats. Pure functions of the rows, so that they can be tested alone.
import type { LockMode } from "./holders";
import type { Format } from "./options";

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
  /** SHA-256 of the stored record bytes (json only) */
  sha256?: string;
}

const text = (v: string | number | null) => (v === null ? "" : String(v));

function localTime(seconds: number | null): string {
  if (seconds === null) return "-";
  const d = new Date(seconds * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** RFC 4180: quote a field holding a comma, quote or line break; double its quotes. */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

const SEVEN = (r: Row) => [r.descriptor, text(r.pid), String(r.slot), text(r.user), text(r.acquired), r.status, text(r.command)];

function human(rows: Row[], withStatus: boolean): string {
  const header = ["DESCRIPTOR", "SLOT", "MODE", "PID", "OWNER", "USER", "ACQUIRED", ...(withStatus ? ["STATUS"] : []), "COMMAND"];
  const cells = rows.map((r) => [
    r.descriptor,
    r.maxHolders === null ? String(r.slot) : `${r.slot}/${r.maxHolders}`,
    r.mode ?? "-",
    r.pid === null ? "-" : String(r.pid),
    r.owner === null ? "-" : String(r.owner),
    r.user ?? "-",
    localTime(r.acquired),
    ...(withStatus ? [r.status] : []),
    (r.command ?? "").replace(/[\r\n\t]/g, " "),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), ...cells.map(line)].join("\n") + "\n";
}

export function formatRows(rows: Row[], format: Format, withStatus = false): string {
  switch (format) {
    case "human":
      return human(rows, withStatus);
    case "csv":
      return ["descriptor,pid,slot,user,acquired,status,command", ...rows.map((r) => SEVEN(r).map(csvField).join(","))].join("\n") + "\n";
    case "null":
      return rows.map((r) => SEVEN(r).map((f) => `${f}\0`).join("")).join("");
    case "json":
      return JSON.stringify(rows, null, 2) + "\n";
  }
}
