// The only module that prints results and decides the exit status.
import { isatty } from "../ffi/libc";
import { BusyError, EXIT, WaitlockError } from "./errors";
import { resolveLockDir } from "./lockdir";
import { debug, error, setVerbosity } from "./log";
import { readNameFromStdin } from "./names";
import { forcePolling } from "./waker";
import { command, parseOptions, VERSION, type Options } from "./options";
import { noEvents, syslogEvents, type Events } from "./modes/events";
import { execUnderLock } from "./modes/exec";
import { claimSlot, type Claimed } from "./modes/describe";
import type { SlotRequest } from "./engine";
import type { LockMode } from "./holders";

const EPILOGUE = `FORMS
  waitlock [OPTIONS] NAME                       take a slot for the calling process, then return
  waitlock [OPTIONS] NAME --exec CMD [ARG...]   run CMD while holding a slot
  waitlock --check [-m N | -c [-x N]] NAME      is a slot free? (takes nothing)
  waitlock --done NAME                          ask the holders of NAME to release
  waitlock --list [-f FORMAT] [--all | --stale-only] [NAME | --file PATH]
  echo NAME | waitlock [OPTIONS] ...            NAME from stdin when not on the line
  waitlock [OPTIONS] --file PATH [--exec CMD]   lock an existing file or directory, as flock(1)
  waitlock [-s] [-t SECONDS] --fd N             lock the caller's descriptor N, then return
  waitlock --fd N --unlock                      release the lock of descriptor N
  --check, --done and --list take --file PATH in place of NAME.

EXIT STATUS
  0 success   1 busy (--check: all slots held)   2 timeout (--check: cannot tell)
  3 usage error   4 system error   5 permission denied   6 lock directory unusable
  75 temporary failure, retry   126/127 --exec could not run the command
  otherwise the status of the command run by --exec (128+N when killed by signal N)

ENVIRONMENT
  WAITLOCK_DIR      lock directory (--lock-dir wins)
  WAITLOCK_TIMEOUT  default --timeout
  WAITLOCK_DEBUG    1, true or yes: like --verbose
  WAITLOCK_SLOT     preferred semaphore slot; set for the command run by --exec
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
  if (opts.mode !== "exec" || opts.shared || opts.file !== undefined) return runOther(opts);
  const req = slotRequest(opts);
  const events = eventsFor(opts, req.name, req.slots);
  return execUnderLock(req.name, () => claimSlot(req, opts.timeout, opts.recordForm, events), opts.command!, events);
}

function slotRequest(opts: Options): SlotRequest {
  const name = opts.name ?? readNameFromStdin();
  const dir = resolveLockDir(opts.lockDir, process.env)!;
  return { dir: dir.path, shared: dir.shared, name, slots: opts.slots, preferred: opts.preferredSlot };
}

/** The lock directory for the modes that only look: undefined when it does not exist. */
const readOnlyDir = (opts: Options) => resolveLockDir(opts.lockDir, process.env, false)?.path;

const eventsFor = (opts: Options, name: string, slots: number): Events => (opts.syslog ? syslogEvents(opts.facility, name, slots) : noEvents);

async function runOther(opts: Options): Promise<number> {
  switch (opts.mode) {
    case "help":
      await Bun.write(Bun.stdout, await help());
      return EXIT.OK;
    case "version":
      await Bun.write(Bun.stdout, `waitlock ${VERSION}\n`);
      return EXIT.OK;
    case "list":
      return (await import("./modes/list")).listLocks(() => readOnlyDir(opts), opts);
    case "check": {
      const { checkFile, checkSlots } = await import("./modes/check");
      if (opts.file !== undefined) return checkFile(opts.file, modeOf(opts));
      return checkSlots(() => ({ dir: readOnlyDir(opts), name: opts.name ?? readNameFromStdin(), slots: opts.slots, mode: modeOf(opts) }));
    }
    case "done":
      return (await import("./modes/done")).signalHolders(
        readOnlyDir(opts),
        opts.file !== undefined ? { file: opts.file } : { name: opts.name ?? readNameFromStdin() },
        opts.timeout ?? undefined,
      );
    case "fd": {
      const dir = resolveLockDir(opts.lockDir, process.env)!;
      return (await import("./modes/fd")).lockDescriptor(dir, opts.fd!, modeOf(opts), opts.timeout, opts.recordForm, eventsFor(opts, `fd ${opts.fd}`, 1));
    }
    case "unlock":
      return (await import("./modes/fd")).unlockDescriptor(readOnlyDir(opts), opts.fd!);
  }
  const [claims, hold] = await Promise.all([import("./modes/claims"), import("./modes/hold")]);
  const mode = modeOf(opts);
  let name: string;
  let events: Events;
  let take: (owner?: number) => Claimed;
  if (opts.file !== undefined) {
    const dir = resolveLockDir(opts.lockDir, process.env)!;
    const file = opts.file;
    name = file;
    events = eventsFor(opts, file, 1);
    take = (owner) => claims.claimFile(dir, file, mode, opts.timeout, opts.recordForm, events, owner === undefined ? undefined : hold.fileHeldFor(dir.path, owner, mode));
  } else {
    const req = slotRequest(opts);
    name = req.name;
    events = eventsFor(opts, req.name, req.slots);
    const claim = opts.shared ? claims.claimSharedSlot : claimSlot;
    take = (owner) => claim(req, opts.timeout, opts.recordForm, events, owner === undefined ? undefined : hold.slotHeldFor(owner, mode));
  }
  if (opts.mode === "exec") return execUnderLock(name, () => take(), opts.command!, events);
  return hold.holdForCaller(take, name, opts.owner, events);
}

const modeOf = (opts: Options): LockMode => (opts.shared ? "shared" : "exclusive");

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
    return report(e);
  }
}

function report(e: unknown): number {
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
