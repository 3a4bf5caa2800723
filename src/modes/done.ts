// waitlock --done NAME: SIGTERM every live holder of NAME, then wait until each has let go.
import { E, kill, signalNumber } from "../../ffi/libc";
import { inspect, releasedSince } from "../engine";
import { EXIT, WaitlockError } from "../errors";
import { holdersPhrase, type Holder } from "../holdertext";
import { debug, notice } from "../log";
import { hasOpen } from "../procinfo";
import { scanSlotFiles, slotRecord } from "./scan";

const DONE_WAIT_SECONDS = 5;

export async function signalHolders(dir: string, name: string, waitSeconds = DONE_WAIT_SECONDS): Promise<number> {
  const sigterm = signalNumber("SIGTERM")!;
  const signalled: { path: string; ino: number; holder: Holder }[] = [];
  let refused: number | undefined;
  for (const file of await scanSlotFiles(dir, name)) {
    const seen = inspect(file.path, true);
    if (seen.state !== "held") continue;
    const decoded = slotRecord(file, seen.bytes!);
    if (!("record" in decoded)) {
      debug(`${file.path} is held but its record is unusable (${decoded.corrupt}); cannot tell whom to signal`);
      continue;
    }
    const record = decoded.record;
    // The record names the holder and its owner; the kernel says which has the file open.
    // (After `waitlock --exec` is SIGKILLed, its command, the owner, still holds it.)
    const opened = (pid: number) => hasOpen(pid, seen.dev!, seen.ino!);
    const target = opened(record.pid) !== false ? record.pid : opened(record.owner) ? record.owner : undefined;
    if (target === undefined) {
      debug(`neither PID ${record.pid} nor ${record.owner} named in ${file.path} has it open; not signalling them`);
      continue;
    }
    const r = kill(target, sigterm);
    if (r === 0) {
      debug(`sent SIGTERM to PID ${target}, holder of '${name}' slot ${file.slot}`);
      signalled.push({ path: file.path, ino: seen.ino!, holder: { pid: target, command: record.command } });
    } else if (r === -E.EPERM) refused = target;
    else debug(`holder PID ${target} of slot ${file.slot} is gone`);
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
      notice(name, `released by ${holdersPhrase(signalled.map((s) => s.holder))} after SIGTERM`);
      return EXIT.OK;
    }
    if (performance.now() >= deadline) {
      const holders = pending.map((s) => s.holder);
      throw new WaitlockError(EXIT.TIMEOUT, name, `${holdersPhrase(holders)} still ${holders.length === 1 ? "holds" : "hold"} the lock ${waitSeconds} seconds after SIGTERM`);
    }
    await Bun.sleep(step);
  }
}
