// The detached process behind `waitlock NAME`: it owns the locked descriptor (fd 3) and
// lets go when the owner exits or when it is told to with SIGTERM, SIGINT or SIGHUP. It
// learns of the owner's exit from a pidfd (Linux: fd 4, opened by waitlock before the
// spawn), from a kqueue of its own (BSD, macOS), or by polling: the owner's PID with its
// start time, so that a reused PID is not taken for the owner.
import { untilExit } from "../procinfo";
import { letGo } from "../claims";
import { noEvents, syslogEvents } from "../events";
import { heededStopSignals } from "../child";

/**
 * The arguments that start a holder process, after the program itself (see runHolder): the
 * owner and its start time first, so that keptFor (owner.ts) finds them whatever the paths
 * after them hold; last, how to let go (Claim.handOver()).
 */
export const holderArgs = (owner: number, ownerStart: number | undefined, watch: string, acquiredMs: number, facility: string, name: string, handOver: string[]) =>
  ["__hold", String(owner), String(ownerStart ?? ""), watch, String(acquiredMs), facility, name, ...handOver];

const LOCK_FD = 3;
const OWNER_FD = 4;

export async function runHolder(args: string[]): Promise<number> {
  const [ownerArg = "", ownerStartArg = "", watch = "", acquiredArg = "", facility = "", name = "", ...handOver] = args;
  const owner = Number(ownerArg);
  // Unknown start (not Linux): any process under the owner's PID counts as the owner.
  const ownerStart = ownerStartArg === "" ? undefined : Number(ownerStartArg);
  const acquiredAt = Number(acquiredArg);
  const events = facility ? syslogEvents(facility, name, 1) : noEvents;
  let done = false;
  const finish = () => {
    if (!done) {
      done = true;
      letGo(LOCK_FD, handOver);
      events.released((Date.now() - acquiredAt) / 1000);
    }
    process.exit(0);
  };
  for (const signal of heededStopSignals()) process.on(signal, finish);

  await untilExit(owner, ownerStart, watch, OWNER_FD);
  finish();
  return 0;
}
