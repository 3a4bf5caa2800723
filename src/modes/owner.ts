// Whom a holder process keeps its lock for, as its arguments say (a plain acquire's holder,
// a network engine's, a coprocess), and whether that is the very process now under the
// owner's PID: for the same-owner check, --list and --done.
import { startedAt } from "../holders";
import { commandLine } from "../procinfo";
import type { LockRecord } from "../record";

/** Whom a holder process keeps its lock for (keptFor). */
export interface Kept {
  kind: "hold" | "serve";
  owner: number;
  /** the owner's start time, as startedAt() gives it; undefined: not known */
  ownerStart?: number;
}

/**
 * Whom a running holder process keeps its slot for, read from its arguments: a plain
 * acquire's holder ("hold": its owner, with the owner's start time, undefined where it
 * could not be read), a network engine's (`__lease ORDER`, lease-holder.ts: the same,
 * from its JSON order), or a coprocess ("serve": its `--owner`, else the owner its own
 * `record` names, the client that started it). Else undefined.
 */
export function keptFor(pid: number, record?: LockRecord): Kept | undefined {
  const line = commandLine(pid);
  const lease = line.indexOf(" __lease ");
  if (lease >= 0) {
    try {
      const order = JSON.parse(line.slice(lease + " __lease ".length)) as { owner: number; ownerStart?: number };
      return { kind: "hold", owner: order.owner, ownerStart: order.ownerStart };
    } catch {
      return undefined;
    }
  }
  const argv = line.split(" ");
  const at = argv.indexOf("__hold");
  if (at >= 0) return { kind: "hold", owner: Number(argv[at + 1]), ownerStart: argv[at + 2] ? Number(argv[at + 2]) : undefined };
  if (!argv.includes("--serve")) return undefined;
  const owner = argv.indexOf("--owner");
  if (owner >= 0) return { kind: "serve", owner: Number(argv[owner + 1]) };
  return record?.pid === pid ? { kind: "serve", owner: record.owner } : undefined;
}

/** The owner a running holder process keeps its slot for (keptFor), or undefined. */
export const ownerOfHolder = (pid: number, record?: LockRecord): number | undefined => keptFor(pid, record)?.owner;

/**
 * Does the live process `holder`, which holds a lock for an owner's PID, hold it for the
 * process under that PID that started at `ownerStart` (startedAt()), and not for an
 * earlier one that exited before the holder noticed? A plain acquire's holder (of a lock
 * directory's slot or of an engine's lease) has its owner's start time in its arguments; a
 * coprocess's owner was running when the coprocess started. Where start times are unknown
 * (`ownerStart` undefined), the PID alone counts.
 */
export function keepsFor(holder: number, ownerStart: number | undefined, record?: LockRecord): boolean {
  return ownerStart === undefined || keeps(keptFor(holder, record), holder, ownerStart);
}

/** keepsFor(), for what keptFor() already said of `holder` (`kept`). */
export function keeps(kept: Kept | undefined, holder: number, ownerStart: number | undefined): boolean {
  if (ownerStart === undefined) return true;
  if (kept?.kind === "hold") return kept.ownerStart === undefined || kept.ownerStart === ownerStart;
  // Else the holder is its own owner (--fd, the library), or --exec's, whose owner is its
  // child: a PID not free for reuse until the holder has reaped it, and then lets go.
  return kept?.kind !== "serve" || ownerStart <= (startedAt(holder) ?? Infinity);
}
