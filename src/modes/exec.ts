// waitlock NAME --exec CMD: run CMD while holding a slot; release on every path (invariant 5).
import { E, signalNumber } from "../../ffi/libc";
import { EXIT, WaitlockError } from "../errors";
import { debug } from "../log";
import type { Claimed } from "./describe";
import type { Events } from "./events";

const FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/** ASCII white space (without a regex: compiling one costs start-up). */
const hasBlank = (s: string) => {
  for (let i = 0; i < s.length; i++) if (" \t\n\r\v\f".includes(s[i]!)) return true;
  return false;
};

/** One argument with white space in it is a shell command line; anything else is argv. */
function commandArgv(command: string[]): string[] {
  return command.length === 1 && hasBlank(command[0]!) ? ["/bin/sh", "-c", command[0]!] : command;
}

/**
 * Why `command` could not be started, as the shell would say it: 127 not found (with a hint
 * for `VAR=value cmd`, which only a shell understands), 126 a directory or not executable.
 */
function cannotRun(command: string, e: unknown): WaitlockError {
  const code = (e as { code?: string }).code;
  const errno = -((e as { errno?: number }).errno ?? 0);
  if (code === "ENOENT" || errno === E.ENOENT) {
    const hint = command.includes("=") && !command.includes("/") ? ` (to set a variable for the command, use: --exec env ${command} ...)` : "";
    return new WaitlockError(EXIT.NOT_FOUND, command, `command not found${hint}`);
  }
  if (code === "EACCES" && isDirectory(command)) return new WaitlockError(EXIT.CANNOT_EXECUTE, command, "cannot execute: is a directory");
  const why = code === "EACCES" ? "permission denied" : (e as Error).message;
  return new WaitlockError(EXIT.CANNOT_EXECUTE, command, `cannot execute: ${why}`);
}

function isDirectory(path: string): boolean {
  const { statSync } = require("node:fs") as typeof import("node:fs");
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/**
 * Takes the lock with `take` (a slot of a NAME, or a file: `descriptor` is its NAME or the
 * file's path, for WAITLOCK_DESCRIPTOR), runs `command` holding it and lets go when the
 * command has ended. Returns the command's status (128+N when killed by signal N); throws
 * what `take` throws, WaitlockError 126/127 when the command cannot be run.
 */
export async function execUnderLock(descriptor: string, take: () => Claimed | Promise<Claimed>, command: string[], events: Events): Promise<number> {
  // Everything the spawn needs that does not depend on the slot is ready before the wait,
  // so that the moment between winning the lock and starting the command stays short. A
  // command not found now is looked up again at spawn time, and reported then.
  const argv = commandArgv(command).slice();
  const argv0 = argv[0]!;
  const resolved = Bun.which(argv0);
  if (resolved) argv[0] = resolved;
  const env: Record<string, string | undefined> = { ...process.env, WAITLOCK_DESCRIPTOR: descriptor };

  const outcome = await take();
  if (!("claim" in outcome)) throw new Error("unreachable: exec never re-enters a lock");
  const held = outcome.claim;
  const started = Date.now();

  // Forwarding is in place before the command exists: JS signal handlers run on a later turn
  // of the event loop, by which time the child below has been spawned. (A signal before
  // this line kills waitlock while no command runs: the kernel frees the slot.)
  let child: ReturnType<typeof Bun.spawn> | undefined;
  const forward = (signal: (typeof FORWARDED)[number]) => () => {
    debug(`forwarding ${signal} to process ${child?.pid}`);
    child?.kill(signal);
  };
  for (const signal of FORWARDED) process.on(signal, forward(signal));

  try {
    env.WAITLOCK_SLOT = String(held.slot);
    // The command inherits the locked descriptor as fd 3: if waitlock is killed outright,
    // the slot stays held until the command is gone too.
    child = Bun.spawn(argv, { argv0, stdio: ["inherit", "inherit", "inherit", held.fd], env });
  } catch (e) {
    held.release();
    throw cannotRun(command[0]!, e);
  }

  const commandText = command.join(" ");
  held.describe(process.pid, child.pid, commandText);
  events.acquired(held.slot, commandText);
  debug(`running '${commandText}' as process ${child.pid} under '${descriptor}' slot ${held.slot}`);

  const status = await child.exited;
  held.release();
  events.released((Date.now() - started) / 1000);
  if (child.signalCode) {
    debug(`command was killed by ${child.signalCode}`);
    return 128 + (signalNumber(String(child.signalCode)) ?? 0);
  }
  debug(`command exited with status ${status}`);
  return status;
}
