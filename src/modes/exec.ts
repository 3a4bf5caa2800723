// waitlock NAME --exec CMD: run CMD while holding a slot; release on every path (invariant 5).
// How the command is started and supervised: src/child.ts.
import { kill, signalNumber } from "../../ffi/libc";
import type { DoneRequest } from "../backend";
import type { Caller } from "../caller";
import { commandSetting, notFound, prepareCommand, type ReadyCommand } from "../child";
import type { LockLostError } from "../errors";
import { debug } from "../log";
import type { Claim } from "../claims";
import type { Events } from "../events";

/** A lease on a network engine (src/backend.ts), as --exec watches it. */
export interface LeaseWatch {
  /** the fencing token, for WAITLOCK_TOKEN */
  token: string;
  lost: Promise<LockLostError>;
  requested: Promise<DoneRequest>;
  /** seconds between SIGTERM and SIGKILL of the command's process group once the lease is lost */
  grace: number;
}

/**
 * What --exec holds while the command runs: a Claim in the lock directory (its descriptor
 * inherited by the command), or a lease (with the session's descriptor, where there is one).
 */
export interface Holding extends Pick<Claim, "slot" | "describe" | "leaveQueue"> {
  fd: number | undefined;
  lease?: LeaseWatch;
  release(): void | Promise<void>;
}

/** ASCII white space (without a regex: compiling one costs start-up). */
const hasBlank = (s: string) => {
  for (let i = 0; i < s.length; i++) if (" \t\n\r\v\f".includes(s[i]!)) return true;
  return false;
};

/** One argument with white space in it is a shell command line; anything else is argv. */
function commandArgv(command: string[]): string[] {
  return command.length === 1 && hasBlank(command[0]!) ? ["/bin/sh", "-c", command[0]!] : command;
}

/** The file to run for `name`: itself when it has a slash, else its place in PATH. */
const resolve = (name: string): string | null => (name.includes("/") ? name : Bun.which(name));

/** The variables waitlock sets for the command: the caller's values of them never reach it. */
const OWN_VARIABLES = ["WAITLOCK_SLOT", "WAITLOCK_DESCRIPTOR", "WAITLOCK_FD", "WAITLOCK_TOKEN"];

/** Those of OWN_VARIABLES that the caller set (in a command run by another waitlock, say). */
function ownVariablesSet(): string[] {
  const set: string[] = [];
  for (const name of OWN_VARIABLES) if (process.env[name] !== undefined) set.push(name);
  return set;
}

/**
 * Takes the lock with `take` (a slot of a NAME, or a file: `descriptor` is its NAME or the
 * file's path, for WAITLOCK_DESCRIPTOR), runs `command` holding it with the process state
 * of `caller`, and lets go when the command has ended. Returns the command's exit status,
 * 128 + N when signal N killed it. Throws what `take` throws (BusyError 1, TimeoutError 2,
 * ...), and 127/126/75 when the command cannot be started (the lock is released first).
 */
export async function execUnderLock(descriptor: string, take: () => { claim: Holding } | { alreadyHeld: number } | Promise<{ claim: Holding }>, command: string[], events: Events, caller: Caller): Promise<number> {
  // Everything that does not depend on the lock is ready before the wait, so that the
  // moment between winning the lock and starting the command stays short. A command not
  // found now is looked for again then.
  const argv = commandArgv(command);
  const setting = commandSetting();
  const prepare = (path: string) => prepareCommand({ path, argv, unset: ownVariablesSet(), inherit: caller.descriptors, fileLimit: caller.fileLimit, mask: caller.mask }, setting);
  const path = resolve(argv[0]!);
  let ready: ReadyCommand | undefined = path === null ? undefined : prepare(path);

  // A lock taken synchronously is used at once: an await would cost a turn of the event
  // loop between winning it and starting the command.
  const taken = take();
  const outcome = taken instanceof Promise ? await taken : taken;
  if (!("claim" in outcome)) throw new Error("unreachable: exec never re-enters a lock");
  const held = outcome.claim;
  const started = Date.now();

  let child;
  try {
    if (!ready) {
      const found = resolve(argv[0]!);
      if (found === null) throw notFound(argv[0]!);
      ready = prepare(found);
    }
    const vars = [`WAITLOCK_SLOT=${held.slot}`, `WAITLOCK_DESCRIPTOR=${descriptor}`];
    if (held.fd !== undefined) vars.push(`WAITLOCK_FD=${held.fd}`);
    if (held.lease) vars.push(`WAITLOCK_TOKEN=${held.lease.token}`);
    // The command inherits the locked descriptor, as under flock(1): if waitlock is killed
    // outright, the lock stays held until the command is gone too.
    child = ready.start(vars, held.fd);
  } catch (e) {
    await held.release();
    throw e;
  }
  // Only now is the next waiter woken to wait for the slot: its work would have competed
  // with ours, on the path from winning the lock to the command running. Left at once, not
  // after the record: a --list prompted by the command's first words sees us hold, not wait.
  held.leaveQueue?.();

  const commandText = command.join(" ");
  held.describe(process.pid, child.pid, commandText);
  events.acquired(held.slot, commandText);
  debug(`running '${commandText}' as process ${child.pid} under '${descriptor}' slot ${held.slot}`);

  const stopWatching = held.lease ? superviseLease(held.lease, child.pid, () => held.release()) : undefined;
  const status = await child.ended;
  stopWatching?.();
  await held.release();
  // A lease found lost by the release itself (the last heartbeat interval) is a loss too:
  // `lost` resolves before release() does, so it wins this race when it happened.
  const loss = held.lease && (await Promise.race([held.lease.lost, undefined]));
  events.released((Date.now() - started) / 1000);
  debug(`command ended with status ${status}`);
  if (loss) throw loss;
  return status;
}

/**
 * Races the command (process group `pid`) against its lease: once the lease is lost, the
 * group gets SIGTERM, and SIGKILL `grace` seconds later (SPEC "Across machines"); a
 * `--done` request stops the group too, or (asked by the command's own caller) only lets
 * go. Returns the function that stops watching once the command has ended.
 */
function superviseLease(lease: LeaseWatch, pid: number, letGo: () => void | Promise<void>): () => void {
  let killer: Timer | undefined;
  let over = false;
  const group = (signal: string) => {
    if (!over) kill(-pid, signalNumber(signal)!);
  };
  lease.lost.then((e) => {
    if (over) return;
    debug(`${e.message}: SIGTERM to process group ${pid}, SIGKILL in ${lease.grace} s`);
    group("SIGTERM");
    killer = setTimeout(() => group("SIGKILL"), lease.grace * 1000);
  });
  lease.requested.then((request) => {
    if (over) return;
    debug(`--done asked to ${request === "stop" ? "stop the command" : "release the lock"}`);
    if (request === "stop") group("SIGTERM");
    else letGo();
  });
  return () => {
    over = true;
    clearTimeout(killer);
  };
}
