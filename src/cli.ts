// The only module that prints results and decides the exit status.
import { BusyError, EXIT, UnknownOptionError, WaitlockError } from "./errors";
import { resolveLockDir } from "./lockdir";
import { colourOn, debug, error, notice, setVerbosity, usageError } from "./log";
import { readNameFromStdin } from "./names";
import { forcePolling } from "./waker";
import { parseOptions, VERSION, type Options } from "./options";
import { noEvents, printingSlot, syslogEvents, type Events } from "./modes/events";
import { execUnderLock } from "./modes/exec";
import type { SlotRequest } from "./engine";

// Every mode but --exec is a chunk of its own (the build splits at import()), evaluated only
// when chosen: each function a module declares costs every start that evaluates it. And a
// function costs on its first call in proportion to its size, taken branches or not, so the
// --exec path calls only what it needs.
function run(opts: Options): Promise<number> {
  if (opts.mode !== "exec") return runOther(opts);
  const req = slotRequest(opts);
  return execUnderLock(req, opts.timeout, opts.command!, opts.recordForm, eventsFor(opts, req));
}

function slotRequest(opts: Options): SlotRequest {
  const name = opts.name ?? readNameFromStdin();
  const dir = resolveLockDir(opts.lockDir, process.env)!;
  return { dir: dir.path, shared: dir.shared, name, slots: opts.slots, preferred: opts.preferredSlot };
}

/** The lock directory for the modes that only look: undefined when it does not exist. */
const readOnlyDir = (opts: Options) => resolveLockDir(opts.lockDir, process.env, false)?.path;

function eventsFor(opts: Options, req: SlotRequest): Events {
  const events = opts.syslog ? syslogEvents(opts.facility, req.name, req.slots) : noEvents;
  return opts.printSlot ? printingSlot(events) : events;
}

async function runOther(opts: Options): Promise<number> {
  switch (opts.mode) {
    case "help":
      const { helpText, helpWidth } = await import("./help");
      await Bun.write(Bun.stdout, helpText(helpWidth(process.env, process.stdout.columns), colourOn(1)));
      return EXIT.OK;
    case "version":
      await Bun.write(Bun.stdout, `waitlock ${VERSION}\n`);
      return EXIT.OK;
    case "list":
      if (opts.watch !== undefined) return (await import("./modes/watch")).watchLocks(() => readOnlyDir(opts), opts, opts.watch);
      return (await import("./modes/list")).listLocks(() => readOnlyDir(opts), opts);
    case "check":
      return (await import("./modes/check")).checkSlots(() => ({ dir: readOnlyDir(opts), name: opts.name ?? readNameFromStdin(), slots: opts.slots }));
    case "done":
      return (await import("./modes/done")).signalHolders(readOnlyDir(opts), opts.name ?? readNameFromStdin(), opts.timeout ?? undefined);
  }
  const req = slotRequest(opts);
  return (await import("./modes/hold")).holdForCaller(req, opts.timeout, opts.owner, opts.recordForm, eventsFor(opts, req));
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(argv, process.env);
  } catch (e) {
    if (e instanceof UnknownOptionError) return report((await import("./help")).explainUnknown(e));
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
    if (e instanceof BusyError) notice(e.context, e.message);
    else if (e.exitCode === EXIT.USAGE) usageError(e.context, e.message);
    else error(e.context, e.message);
    return e.exitCode;
  }
  // Still one line; the stack only for --verbose.
  error("internal error", e instanceof Error ? e.message : String(e));
  if (e instanceof Error && e.stack) debug(e.stack);
  return EXIT.SYSTEM;
}
