// waitlock --done NAME (or --file PATH): SIGTERM the work that holds it, then wait until it
// has let go.
import { E, kill, signalNumber } from "../../ffi/libc";
import { EXIT, WaitlockError, secondsPhrase } from "../errors";
import { holdsLock, runningSince, startedAt } from "../holders";
import { holdersPhrase, type Holder } from "../holdertext";
import { debug, notice } from "../log";
import { alive, ancestorsOfSelf, commandLine, processUid } from "../procinfo";
import { DONE_WAIT_SECONDS } from "../options";
import type { LockRecord } from "../record";
import { keeps, keptFor } from "./owner";
import { releasedSinceSeen, viewSlots, type SlotView } from "../scan";

/**
 * Have the processes signalled for one slot let go of it? Asked of the kernel for each of
 * them, not of the slot: a waiter may already hold it again, even on the same file. Where
 * the kernel cannot say (not Linux), the slot must have been released since.
 */
function letGo(view: SlotView, signalled: Holder[]): boolean {
  let unknown = false;
  for (const { pid } of signalled) {
    const holds = holdsLock(pid, view.dev, view.ino);
    if (holds) return false;
    if (holds === undefined && alive(pid)) unknown = true;
  }
  return !unknown || releasedSinceSeen(view);
}

/**
 * Whom to signal for one held slot. The record's holder when it still holds the slot: an
 * `--exec` waitlock forwards the signal to its command; a plain acquire's holder process
 * lets go, and the owner script it holds for is stopped too, so that its work does not run
 * on unprotected. Otherwise every process the kernel names as holding it (the command of a
 * killed waitlock, a daemon it left behind), and the owners of any holder processes among them
 * (a coprocess among them: the shell it holds for).
 */
function targetsOf(view: SlotView, spared: ReadonlySet<number>): number[] {
  const records: LockRecord[] = [];
  if (view.record) records.push(view.record);
  for (const h of view.holderFiles) if (h.record) records.push(h.record);
  const targets = new Set<number>();
  for (const pid of view.holders) {
    const record = records.find((r) => r.pid === pid);
    // A holder that is its own owner (the caller of `--fd N`, a library user) is an owner:
    // spared, as below, when it is this process or an ancestor.
    if (!(record && record.owner === pid && spared.has(pid))) targets.add(pid);
    const kept = keptFor(pid, record);
    const owner = kept?.owner;
    if (owner === undefined || spared.has(owner)) continue;
    // A record names the owner with the time it was taken: a reused PID is left alone.
    const named = record ?? view.record;
    if (named && named.owner === owner && !runningSince(owner, named.acquiredAt)) continue;
    // The holder knows when its owner started: a new process given the PID of an owner that
    // has exited is not that owner, even before the holder has noticed the exit.
    if (!keeps(kept, pid, startedAt(owner))) continue;
    // Only an owner its holder's user may signal: --owner cannot make --done stop the
    // process of another user.
    const holderUid = processUid(pid);
    if (holderUid !== 0 && holderUid !== processUid(owner)) continue;
    targets.add(owner);
  }
  return [...targets];
}

/**
 * Signals the holders of the NAME or file `select` names in `dir` and waits up to
 * `waitSeconds` for every slot they held to be released. Returns 0 (released) or 1 (nobody
 * held it); throws WaitlockError 2 naming the PIDs that did not let go in time (or that
 * hold it for this very process), 5 when no holder could be signalled.
 */
export async function signalHolders(dir: string | undefined, select: { name: string } | { file: string }, waitSeconds = DONE_WAIT_SECONDS): Promise<number> {
  const name = "name" in select ? select.name : select.file;
  const sigterm = signalNumber("SIGTERM")!;
  // A script releasing its own lock (`waitlock NAME &` ... `waitlock --done NAME`) is
  // the owner, or its ancestor: only the lock goes, the script keeps running.
  const spared = ancestorsOfSelf();
  const signalled: { view: SlotView; holders: Holder[] }[] = [];
  let refused: number | undefined;
  let ownHolder: number | undefined;
  for (const view of await viewSlots(dir, select)) {
    if (!view.held) continue;
    const targets = targetsOf(view, spared);
    if (targets.length === 0 && view.holders.length > 0) ownHolder = view.holders[0];
    else if (targets.length === 0) debug(`${view.file.path} is held, but the holder cannot be seen; not signalling anybody`);
    const sent: Holder[] = [];
    for (const pid of targets) {
      // What the record's holder holds the lock for; another process, what it runs (read
      // before the signal: a process that obeys it is gone a moment later).
      const command = view.recordHolds && pid === view.record!.pid ? view.record!.command : commandLine(pid);
      const r = kill(pid, sigterm);
      if (r === 0) sent.push({ pid, command });
      else if (r === -E.EPERM) refused = pid;
    }
    if (sent.length === 0) continue;
    debug(`sent SIGTERM to ${holdersPhrase(sent)} for '${name}' slot ${view.file.slot}`);
    signalled.push({ view, holders: sent });
  }
  if (signalled.length === 0) {
    if (refused !== undefined) throw new WaitlockError(EXIT.PERMISSION, name, `not allowed to signal holder PID ${refused}`);
    if (ownHolder !== undefined)
      throw new WaitlockError(EXIT.TIMEOUT, name, `held by PID ${ownHolder}, this process or its caller, through its own descriptor: close it (or use --fd N --unlock)`);
    notice(name, "nobody holds this lock");
    return EXIT.BUSY;
  }
  const deadline = performance.now() + waitSeconds * 1000;
  for (let step = 2; ; step = Math.min(step * 2, 100)) {
    const pending = signalled.filter((s) => !letGo(s.view, s.holders));
    if (pending.length === 0) {
      notice(name, `released by ${holdersPhrase(signalled.flatMap((s) => s.holders))} after SIGTERM`);
      return EXIT.OK;
    }
    if (performance.now() >= deadline) {
      const all = pending.flatMap((s) => s.holders);
      const living = all.filter((h) => alive(h.pid));
      const holders = living.length > 0 ? living : all;
      throw new WaitlockError(EXIT.TIMEOUT, name, `${holdersPhrase(holders)} still ${holders.length === 1 ? "holds" : "hold"} the lock ${secondsPhrase(waitSeconds)} after SIGTERM`);
    }
    await Bun.sleep(step);
  }
}
