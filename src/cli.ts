// The only module that prints results and decides the exit status.
import { isatty } from "../ffi/libc";
import { callerState } from "./caller";
import { BusyError, EXIT, TimeoutError, WaitlockError } from "./errors";
import { resolveLockDir } from "./lockdir";
import { debug, error, setVerbosity } from "./log";
import { runtimeError } from "./syserror";
import { readNameFromStdin } from "./names";
import { forcePolling } from "./waker";
import { command, parseOptions, VERSION, type Options } from "./options";
import { noEvents, syslogEvents, type Events } from "./modes/events";
import { execUnderLock } from "./modes/exec";
import type { SlotRequest } from "./engine";

const EPILOGUE = `FORMS
  waitlock [OPTIONS] NAME                       take a slot for the calling process, then return
  waitlock [OPTIONS] NAME --exec CMD [ARG...]   run CMD while holding a slot
  waitlock --check [-m N | -c [-x N]] NAME      is a slot free? (takes nothing)
  waitlock --done NAME                          ask the holders of NAME to release
  waitlock --list [-f FORMAT] [--all | --stale-only] [NAME]
  echo NAME | waitlock [OPTIONS] ...            NAME from stdin when not on the line

EXIT STATUS
  0 success   1 busy (--check: all slots held)   2 timeout (--check: cannot tell)
  3 usage error   4 system error   5 permission denied   6 lock directory unusable
  75 temporary failure, retry   126/127 --exec could not run the command
  -E N replaces 1 and 2 when the lock was not acquired
  otherwise the status of the command run by --exec (128+N when killed by signal N)

ENVIRONMENT
  WAITLOCK_DIR      lock directory (--lock-dir wins)
  WAITLOCK_TIMEOUT  default --timeout
  WAITLOCK_DEBUG    1, true or yes: like --verbose
  WAITLOCK_SLOT     preferred semaphore slot; set for the command run by --exec
  WAITLOCK_FD       set for the command run by --exec: the locked descriptor's number
  WAITLOCK_RECORD   binary (default) or text: the form of the holder's record
  WAITLOCK_POLL     1, true or yes: wait by polling, without inotify or pidfd
`;

async function help(): Promise<string> {
  const { defineCommand, renderUsage } = await import("citty");
  const usage = (await renderUsage(defineCommand(command))).replace(/[ \t]+$/gm, "");
  // citty colours its usage; a pipe or a file gets plain text.
  return `${(isatty(1) ? usage : Bun.stripANSI(usage)).trimEnd()}\n\n${EPILOGUE}`;
}

// Every mode but --exec is a chunk of its own (the build splits at import()), evaluated only
// when chosen: each function a module declares costs every start that evaluates it. And a
// function costs on its first call in proportion to its size, taken branches or not, so the
// --exec path calls only what it needs.
function run(opts: Options): Promise<number> {
  if (opts.mode !== "exec") return runOther(opts);
  // What the command inherits is read before waitlock opens descriptors of its own.
  const caller = callerState();
  const req = slotRequest(opts);
  return execUnderLock(req, opts.timeout, opts.command!, opts.recordForm, eventsFor(opts, req), caller);
}

function slotRequest(opts: Options): SlotRequest {
  const name = opts.name ?? readNameFromStdin();
  const dir = resolveLockDir(opts.lockDir, process.env);
  return { dir: dir.path, shared: dir.shared, name, slots: opts.slots, preferred: opts.preferredSlot };
}

const eventsFor = (opts: Options, req: SlotRequest): Events => (opts.syslog ? syslogEvents(opts.facility, req.name, req.slots) : noEvents);

async function runOther(opts: Options): Promise<number> {
  switch (opts.mode) {
    case "help":
      await Bun.write(Bun.stdout, await help());
      return EXIT.OK;
    case "version":
      await Bun.write(Bun.stdout, `waitlock ${VERSION}\n`);
      return EXIT.OK;
    case "list":
      return (await import("./modes/list")).listLocks(() => resolveLockDir(opts.lockDir, process.env).path, opts);
    case "check":
      return (await import("./modes/check")).checkSlots(() => ({ dir: resolveLockDir(opts.lockDir, process.env).path, name: opts.name ?? readNameFromStdin(), slots: opts.slots }));
  }
  const req = slotRequest(opts);
  if (opts.mode === "done") return (await import("./modes/done")).signalHolders(req.dir, req.name, opts.timeout ?? undefined);
  return (await import("./modes/hold")).holdForCaller(req, opts.timeout, opts.owner, opts.recordForm, eventsFor(opts, req));
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(argv, process.env);
  } catch (e) {
    return report(e);
  }
  setVerbosity(opts);
  if (opts.poll) forcePolling();
  try {
    return await run(opts);
  } catch (e) {
    const code = report(e);
    // -E, as flock(1) -E: only the lock conflict changes its status, never another failure.
    const conflict = e instanceof BusyError || e instanceof TimeoutError;
    return conflict && opts.conflictExitCode !== undefined ? opts.conflictExitCode : code;
  }
}

function report(thrown: unknown): number {
  // A failure the runtime reports (out of descriptors in one of its calls, say) keeps its cause.
  const e = thrown instanceof WaitlockError ? thrown : (runtimeError("system", thrown) ?? thrown);
  if (e instanceof WaitlockError) {
    // Busy is an answer, not a failure: `waitlock -t 0 NAME || ...` prints its own message.
    if (e instanceof BusyError) return e.exitCode;
    if (e.exitCode === EXIT.USAGE) console.error(`waitlock: ${e.context}: ${e.message}`);
    else error(e.context, e.message);
    return e.exitCode;
  }
  // Still one line; the stack only for --verbose.
  error("internal error", e instanceof Error ? e.message : String(e));
  if (e instanceof Error && e.stack) debug(e.stack);
  return EXIT.SYSTEM;
}
