// waitlock NAME: take a slot for the calling process and hand it to a detached holder
// that keeps it until that process exits (invariant 4).
import { close, fstat, getppid, pollReadable } from "../../ffi/libc";
import { readRecordBytes } from "../engine";
import { EXIT } from "../errors";
import { debug } from "../log";
import { fileKey, findHolders, listedLocks, lockOf, runningSince, startedAt, type LockMode } from "../holders";
import { commandLine, ownerToHold, selfCommand } from "../procinfo";
import { decodeRecord, type LockRecord } from "../record";
import { fileBase, holderRecords } from "../holderfiles";
import { runtimeError } from "../syserror";
import type { Claimed } from "../claims";
import { holderArgs } from "./holder";
import { keeps, keepsFor, keptFor } from "./owner";
import type { Events } from "../events";

/** A record of one holder of a lock, and the mode that holder holds it in. */
export interface HolderRecord {
  record: LockRecord;
  mode: LockMode;
}

/**
 * Is the busy lock on the file `dev`/`ino` (a slot file, or a file locked with --file)
 * already held for `owner`, the process that started at `ownerStart` (startedAt();
 * undefined: unknown), in a mode that serves a request for `wanted` (an exclusive hold
 * serves both)? The kernel says who holds it: a record counts if the process it names
 * (the same one, not a reused PID) holds the lock for this very owner (keepsFor); without
 * any usable record (none could be written), any holder process kept for `owner`. Where
 * /proc/locks may leave locks out (a PID namespace), the record's process alone answers,
 * each slot asked costing a look at one process, not at all of them.
 */
export function heldFor(owner: number, ownerStart: number | undefined, wanted: LockMode, dev: number, ino: number, records: HolderRecord[]): boolean {
  const key = fileKey(dev, ino);
  const locks = listedLocks();
  const kernelMode = locks?.get(key)?.mode;
  if ((locks && !kernelMode) || (wanted === "exclusive" && kernelMode === "shared")) return false;
  for (const { record, mode } of records) {
    if (record.owner !== owner) continue;
    const held = lockOf(record.pid, dev, ino);
    if (held === null || (wanted === "exclusive" && (kernelMode ?? held ?? mode) !== "exclusive")) continue;
    if (runningSince(record.pid, record.acquiredAt) && keepsFor(record.pid, ownerStart, record)) return true;
  }
  if (records.length > 0) return false;
  for (const h of findHolders(new Set([key]))?.get(key) ?? []) {
    if (wanted === "exclusive" && h.mode !== "exclusive") continue;
    if (h.pid === owner) return true;
    const kept = keptFor(h.pid);
    if (kept?.owner === owner && keeps(kept, h.pid, ownerStart)) return true;
  }
  return false;
}

/**
 * The records of a slot's holders: its writer's inside the slot file open at `fd`, its
 * readers' in holder files beside it (`path` is the slot file's).
 */
export function slotRecords(fd: number, path: string): HolderRecord[] {
  const records: HolderRecord[] = [];
  const own = decodeRecord(readRecordBytes(fd));
  if (own) records.push({ record: own, mode: "exclusive" });
  for (const { record } of holderRecords(path.slice(0, -".lock".length))) records.push({ record, mode: "shared" });
  return records;
}

/**
 * isOurs for a file (--file) locked through the lock directory `dir`: is it already held
 * for `owner`, the process that started at `ownerStart` (heldFor)?
 */
export function fileHeldFor(dir: string, owner: number, ownerStart: number | undefined, wanted: LockMode) {
  return (_fd: number, dev: number, ino: number): boolean => {
    const records: HolderRecord[] = [];
    // Where the kernel cannot say how a file is held, a holder counts as exclusive.
    for (const { record } of holderRecords(fileBase(dir, dev, ino))) records.push({ record, mode: "exclusive" });
    return heldFor(owner, ownerStart, wanted, dev, ino, records);
  };
}

/**
 * isOurs for a slot: is the busy slot file open at `fd` already held for `owner`, the
 * process that started at `ownerStart` (heldFor)?
 */
export function slotHeldFor(owner: number, ownerStart: number | undefined, wanted: LockMode) {
  return (fd: number, path: string): boolean => {
    const st = fstat(fd);
    return typeof st !== "number" && heldFor(owner, ownerStart, wanted, st.dev, st.ino, slotRecords(fd, path));
  };
}

/**
 * Takes a lock with `take` (which is told the owner and its start time, for its same-owner
 * check) and hands it to a detached holder process that keeps it until the owner exits:
 * `ownerOption`, else the calling process. `name` is the NAME or the locked file's path,
 * for the holder's syslog line. Returns 0; throws what `take` throws, UsageError for a
 * missing --owner, WaitlockError 4 when the caller is gone.
 */
export function holdForCaller(take: (owner: number, ownerStart: number | undefined) => Claimed, name: string, ownerOption: number | undefined, events: Events): number {
  const { owner, watch } = ownerToHold(ownerOption, name);
  const closeWatch = () => watch.kind === "pidfd" && close(watch.fd);
  // With the PID, its start time names the owner: neither a holder that must poll nor the
  // same-owner check (keepsFor) can be fooled by a reused PID.
  const ownerStart = startedAt(owner);

  let outcome;
  try {
    outcome = take(owner, ownerStart);
  } catch (e) {
    closeWatch();
    throw e;
  }
  if ("alreadyHeld" in outcome) {
    debug(`'${name}' slot ${outcome.alreadyHeld} is already held for process ${owner}`);
    closeWatch();
    return EXIT.OK;
  }

  const held = outcome.claim;
  try {
    const exited = watch.kind === "pidfd" ? pollReadable([watch.fd], 0) : [];
    const ownerGone = (ownerOption === undefined && getppid() !== owner) || (Array.isArray(exited) && exited.length > 0);
    if (ownerGone) {
      debug(`process ${owner} exited while we waited; releasing at once`);
      held.release();
      return EXIT.OK;
    }
    const holder = Bun.spawn(
      [...selfCommand(), ...holderArgs(owner, ownerStart, watch.kind, Date.now(), events.holderArgs(), name, held.handOver())],
      {
        stdio: ["ignore", "ignore", "ignore", held.fd, watch.kind === "pidfd" ? watch.fd : "ignore"],
        detached: true,
        cwd: "/",
        env: {},
      },
    );
    holder.unref();
    const command = commandLine(owner);
    held.describe(holder.pid, owner, command);
    debug(`holder process ${holder.pid} keeps '${name}' slot ${held.slot} until process ${owner} exits`);
    events.acquired(held.slot, command);
  } catch (e) {
    held.release();
    throw runtimeError(name, e) ?? e;
  } finally {
    closeWatch();
  }
  close(held.fd);
  return EXIT.OK;
}
