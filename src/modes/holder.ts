// The detached process behind `waitlock NAME`: it owns the locked descriptor (fd 3) and
// lets go when the owner exits or when it is told to with SIGTERM, SIGINT or SIGHUP. It
// learns of the owner's exit from a pidfd (Linux: fd 4, opened by waitlock before the
// spawn), from a kqueue of its own (BSD, macOS), or by polling: the owner's PID with its
// start time, so that a reused PID is not taken for the owner.
import { commandLine, untilExit } from "../procinfo";
import type { LockRecord } from "../record";
import { letGo } from "../claims";
import { noEvents, syslogEvents } from "../events";
import { heededStopSignals } from "../child";

/**
 * The arguments that start a holder process, after the program itself (see runHolder): the
 * owner first, so that ownerOfHolder finds it whatever the paths after it hold; last, how
 * to let go (Claim.handOver()).
 */
export const holderArgs = (owner: number, ownerStart: number | undefined, watch: string, acquiredMs: number, facility: string, name: string, handOver: string[]) =>
  ["__hold", String(owner), String(ownerStart ?? ""), watch, String(acquiredMs), facility, name, ...handOver];

/**
 * Whom a running holder process keeps its slot for, read from its arguments: a plain
 * acquire's holder ("hold": its owner, with the owner's start time, undefined where it
 * could not be read), or a coprocess ("serve": its `--owner`, else the owner its own
 * `record` names, the client that started it). Else undefined.
 */
export function keptFor(pid: number, record?: LockRecord): { kind: "hold" | "serve"; owner: number; ownerStart?: number } | undefined {
  const argv = commandLine(pid).split(" ");
  const at = argv.indexOf("__hold");
  if (at >= 0) return { kind: "hold", owner: Number(argv[at + 1]), ownerStart: argv[at + 2] ? Number(argv[at + 2]) : undefined };
  if (!argv.includes("--serve")) return undefined;
  const owner = argv.indexOf("--owner");
  if (owner >= 0) return { kind: "serve", owner: Number(argv[owner + 1]) };
  return record?.pid === pid ? { kind: "serve", owner: record.owner } : undefined;
}

/** The owner a running holder process keeps its slot for (keptFor), or undefined. */
export const ownerOfHolder = (pid: number, record?: LockRecord): number | undefined => keptFor(pid, record)?.owner;

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
