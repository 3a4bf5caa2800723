// waitlock --done NAME: SIGTERM the work that holds NAME, then wait until it has let go.
import { E, kill, signalNumber } from "../../ffi/libc";
import { releasedSince } from "../engine";
import { EXIT, WaitlockError } from "../errors";
import { runningSince } from "../holders";
import { holdersPhrase, type Holder } from "../holdertext";
import { debug, notice } from "../log";
import { ancestorsOfSelf, commandLine } from "../procinfo";
import { ownerOfHolder } from "./holder";
import { viewSlots, type SlotView } from "./scan";

const DONE_WAIT_SECONDS = 5;

/**
 * Whom to signal for one held slot. The record's holder when it still holds the slot: an
 * `--exec` waitlock forwards the signal to its command; a plain acquire's holder process
 * lets go, and the owner script it holds for is stopped too, so that its work does not run
 * on unprotected. Otherwise every process the kernel names as holding it (the command of a
 * killed waitlock, a daemon it left behind), and the owners of any holder processes among them.
 */
function targetsOf(view: SlotView, spared: ReadonlySet<number>): number[] {
  const targets = new Set<number>(view.holders);
  for (const pid of view.holders) {
    const owner = ownerOfHolder(pid);
    if (owner === undefined || spared.has(owner)) continue;
    // A record names the owner with the time it was taken: a reused PID is left alone.
    if (view.record && view.record.owner === owner && !runningSince(owner, view.record.acquiredAt)) continue;
    targets.add(owner);
  }
  return [...targets];
}

/**
 * Signals the holders of `name` in `dir` and waits up to `waitSeconds` for every slot they
 * held to be released. Returns 0 (released) or 1 (nobody held it); throws WaitlockError 2
 * naming the PIDs that did not let go in time, 5 when no holder could be signalled.
 */
export async function signalHolders(dir: string | undefined, name: string, waitSeconds = DONE_WAIT_SECONDS): Promise<number> {
  const sigterm = signalNumber("SIGTERM")!;
  // A script releasing its own lock (`waitlock NAME &` ... `waitlock --done NAME`) is
  // the owner, or its ancestor: only the lock goes, the script keeps running.
  const spared = ancestorsOfSelf();
  const signalled: { path: string; ino: number; holders: Holder[] }[] = [];
  let refused: number | undefined;
  for (const view of dir === undefined ? [] : await viewSlots(dir, name)) {
    if (!view.held) continue;
    const targets = targetsOf(view, spared);
    if (targets.length === 0) debug(`${view.file.path} is held, but the holder cannot be seen; not signalling anybody`);
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
    signalled.push({ path: view.file.path, ino: view.ino, holders: sent });
  }
  if (signalled.length === 0) {
    if (refused !== undefined) throw new WaitlockError(EXIT.PERMISSION, name, `not allowed to signal holder PID ${refused}`);
    notice(name, "nobody holds this lock");
    return EXIT.BUSY;
  }
  const deadline = performance.now() + waitSeconds * 1000;
  for (let step = 2; ; step = Math.min(step * 2, 100)) {
    const pending = signalled.filter((s) => !releasedSince(s.path, s.ino));
    if (pending.length === 0) {
      notice(name, `released by ${holdersPhrase(signalled.flatMap((s) => s.holders))} after SIGTERM`);
      return EXIT.OK;
    }
    if (performance.now() >= deadline) {
      const holders = pending.flatMap((s) => s.holders);
      throw new WaitlockError(EXIT.TIMEOUT, name, `${holdersPhrase(holders)} still ${holders.length === 1 ? "holds" : "hold"} the lock ${waitSeconds} seconds after SIGTERM`);
    }
    await Bun.sleep(step);
  }
}
