// waitlock NAME --exec CMD: run CMD while holding a slot; release on every path (invariant 5).
// How the command is started and supervised: src/child.ts.
import { bindSpawn } from "../../ffi/libc";
import type { Caller } from "../caller";
import { commandSetting, notFound, startCommand } from "../child";
import { debug } from "../log";
import type { Claimed } from "./describe";
import type { Events } from "./events";

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

/** The caller's environment as KEY=VALUE, without the variables waitlock sets for the command. */
function callerEnv(): string[] {
  const env: string[] = [];
  for (const key in process.env)
    if (key !== "WAITLOCK_SLOT" && key !== "WAITLOCK_DESCRIPTOR" && key !== "WAITLOCK_FD") env.push(`${key}=${process.env[key]}`);
  return env;
}

/**
 * Takes the lock with `take` (a slot of a NAME, or a file: `descriptor` is its NAME or the
 * file's path, for WAITLOCK_DESCRIPTOR), runs `command` holding it with the process state
 * of `caller`, and lets go when the command has ended. Returns the command's exit status,
 * 128 + N when signal N killed it. Throws what `take` throws (BusyError 1, TimeoutError 2,
 * ...), and 127/126/75 when the command cannot be started (the lock is released first).
 */
export async function execUnderLock(descriptor: string, take: () => Claimed | Promise<Claimed>, command: string[], events: Events, caller: Caller): Promise<number> {
  // Everything that does not depend on the lock is ready before the wait, so that the
  // moment between winning the lock and starting the command stays short. A command not
  // found now is looked for again then.
  const argv = commandArgv(command);
  let path = resolve(argv[0]!);
  const env = callerEnv();
  const setting = commandSetting();
  bindSpawn();

  const outcome = await take();
  if (!("claim" in outcome)) throw new Error("unreachable: exec never re-enters a lock");
  const held = outcome.claim;
  const started = Date.now();

  let child;
  try {
    path ??= resolve(argv[0]!);
    if (path === null) throw notFound(argv[0]!);
    // The command inherits the locked descriptor, as under flock(1): if waitlock is killed
    // outright, the lock stays held until the command is gone too.
    child = startCommand({
      path,
      argv,
      env: env.concat(`WAITLOCK_SLOT=${held.slot}`, `WAITLOCK_DESCRIPTOR=${descriptor}`, `WAITLOCK_FD=${held.fd}`),
      inherit: [...caller.descriptors, held.fd],
      fileLimit: caller.fileLimit,
      mask: caller.mask,
    }, setting);
  } catch (e) {
    held.release();
    throw e;
  }

  const commandText = command.join(" ");
  held.describe(process.pid, child.pid, commandText);
  events.acquired(held.slot, commandText);
  debug(`running '${commandText}' as process ${child.pid} under '${descriptor}' slot ${held.slot}`);

  const status = await child.ended;
  held.release();
  events.released((Date.now() - started) / 1000);
  debug(`command ended with status ${status}`);
  return status;
}
