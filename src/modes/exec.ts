// waitlock NAME --exec CMD: run CMD while holding a slot; release on every path (invariant 5).
// How the command is started and supervised: src/child.ts.
import { bindSpawn } from "../../ffi/libc";
import type { Caller } from "../caller";
import { startCommand } from "../child";
import { release, type SlotRequest } from "../engine";
import { EXIT, WaitlockError } from "../errors";
import { debug } from "../log";
import { acquireReporting, describeHolder, storeRecord } from "./describe";
import type { RecordForm } from "../options";
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
 * Takes a slot of `req` (waiting up to `timeout` seconds; null: forever), runs `command`
 * under it with the process state of `caller`, and releases the slot once the command has
 * ended. Returns the command's exit status, 128 + N when signal N killed it. Throws
 * BusyError (1) or TimeoutError (2) when the slot is not had, and 127/126/75 when the
 * command cannot be started (the slot is released first).
 */
export async function execUnderLock(req: SlotRequest, timeout: number | null, command: string[], form: RecordForm, events: Events, caller: Caller): Promise<number> {
  // Everything that does not depend on the slot is ready before the wait, so that the
  // moment between winning the lock and starting the command stays short. A command not
  // found now is looked for again then.
  const argv = commandArgv(command);
  let path = resolve(argv[0]!);
  const env = callerEnv();
  bindSpawn();

  const outcome = acquireReporting(req, timeout, events);
  if (!("held" in outcome)) throw new Error("unreachable: exec never re-enters a lock");
  const held = outcome.held;
  const started = Date.now();

  let child;
  try {
    path ??= resolve(argv[0]!);
    if (path === null) throw new WaitlockError(EXIT.NOT_FOUND, argv[0]!, "command not found");
    // The command inherits the locked descriptor, as under flock(1): if waitlock is killed
    // outright, the slot stays held until the command is gone too.
    child = startCommand({
      path,
      argv,
      env: env.concat(`WAITLOCK_SLOT=${held.slot}`, `WAITLOCK_DESCRIPTOR=${req.name}`, `WAITLOCK_FD=${held.fd}`),
      inherit: [...caller.descriptors, held.fd],
      fileLimit: caller.fileLimit,
      mask: caller.mask,
    });
  } catch (e) {
    release(held);
    throw e;
  }

  const commandText = command.join(" ");
  storeRecord(held, describeHolder(req, held, process.pid, child.pid, commandText), form);
  events.acquired(held.slot, commandText);
  debug(`running '${commandText}' as process ${child.pid} under '${req.name}' slot ${held.slot}`);

  const status = await child.ended;
  release(held);
  events.released((Date.now() - started) / 1000);
  debug(`command ended with status ${status}`);
  return status;
}
