// The only module that prints results and decides the exit status.
import { callerState } from "./caller";
import { BusyError, conflictStatus, EXIT, unansweredStatus, UnknownOptionError, UsageError, WaitlockError } from "./errors";
import { resolveLockDir } from "./lockdir";
import { colourOn, debug, error, notice, setVerbosity, usageError } from "./log";
import { readNameFromStdin } from "./names";
import { runtimeError } from "./syserror";
import { forcePolling } from "./waker";
import { parseOptions, VERSION, type Mode, type Options } from "./options";
import { noEvents, printingSlot, syslogEvents, type Events } from "./events";
import { execUnderLock } from "./modes/exec";
import { claimSlot } from "./slotclaim";
import type { Claimed } from "./claims";
import type { SlotRequest } from "./engine";
import type { LockMode } from "./holders";
import { heededStopSignals, raiseDefault } from "./child";

// Every mode but --exec is a chunk of its own (the build splits at import()), evaluated only
// when chosen: each function a module declares costs every start that evaluates it. And a
// function costs on its first call in proportion to its size, taken branches or not, so the
// --exec path calls only what it needs.
function run(opts: Options): Promise<number> {
  if (opts.mode !== "exec" || opts.shared || opts.file !== undefined || opts.backend !== undefined) return runOther(opts);
  // What the command inherits is read before waitlock opens descriptors of its own.
  const caller = callerState();
  const req = slotRequest(opts);
  // Left once the command runs (execUnderLock).
  req.keepPlace = true;
  const events = eventsFor(opts, req.name, req.slots);
  return execUnderLock(req.name, () => claimSlot(req, opts.timeout, opts.recordForm, events), opts.command!, events, caller);
}

function slotRequest(opts: Options): SlotRequest {
  const name = opts.name ?? readNameFromStdin();
  const dir = resolveLockDir(opts.lockDir, process.env)!;
  return { dir: dir.path, shared: dir.shared, name, slots: opts.slots, preferred: opts.preferredSlot };
}

/** The lock directory for the modes that only look: undefined when it does not exist. */
const readOnlyDir = (opts: Options) => resolveLockDir(opts.lockDir, process.env, false)?.path;

function eventsFor(opts: Options, name: string, slots: number): Events {
  const events = opts.syslog ? syslogEvents(opts.facility, name, slots) : noEvents;
  return opts.printSlot ? printingSlot(events) : events;
}

async function runOther(opts: Options): Promise<number> {
  const caller = opts.mode === "exec" ? callerState() : undefined;
  if (opts.backend !== undefined) return runOnBackend(opts, opts.backend, caller);
  switch (opts.mode) {
    case "help":
      const { helpText, helpWidth } = await import("./help");
      await Bun.write(Bun.stdout, helpText(helpWidth(process.env, process.stdout.columns), colourOn(1)));
      return EXIT.OK;
    case "version":
      await Bun.write(Bun.stdout, `waitlock ${VERSION}\n`);
      return EXIT.OK;
    case "list": {
      const { listLocks, localListing } = await import("./modes/list");
      // Asked anew at each look: under --watch the directory may come and go.
      const source = localListing(() => readOnlyDir(opts), opts);
      if (opts.watch !== undefined) return (await import("./modes/watch")).watchLocks(source, opts, opts.watch);
      return listLocks(source, opts);
    }
    case "check": {
      const { checkFile, checkSlots } = await import("./modes/check");
      if (opts.file !== undefined) return checkFile(opts.file, modeOf(opts));
      return checkSlots(readOnlyDir(opts), opts.name ?? readNameFromStdin(), opts.slots, modeOf(opts));
    }
    case "serve":
      return (await import("./modes/serve")).serve({ verbose: opts.verbose, lockDir: opts.lockDir, owner: opts.owner });
    case "shell-init":
      const [{ shellFunctions }, { selfCommand }] = await Promise.all([import("./modes/shell-init"), import("./procinfo")]);
      await Bun.write(Bun.stdout, shellFunctions(opts.shell!, selfCommand()));
      return EXIT.OK;
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
  const [claims, hold] = await Promise.all([import("./claims"), import("./modes/hold")]);
  const mode = modeOf(opts);
  let name: string;
  let events: Events;
  let take: (owner?: number, ownerStart?: number) => Claimed;
  if (opts.file !== undefined) {
    const dir = resolveLockDir(opts.lockDir, process.env)!;
    const file = opts.file;
    name = file;
    events = eventsFor(opts, file, 1);
    take = (owner, ownerStart) => claims.claimFile(dir, file, mode, opts.timeout, opts.recordForm, events, owner === undefined ? undefined : hold.fileHeldFor(dir.path, owner, ownerStart, mode));
  } else {
    const req = slotRequest(opts);
    name = req.name;
    events = eventsFor(opts, req.name, req.slots);
    const claim = opts.shared ? claims.claimSharedSlot : claimSlot;
    take = (owner, ownerStart) => claim(req, opts.timeout, opts.recordForm, events, owner === undefined ? undefined : hold.slotHeldFor(owner, ownerStart, mode));
  }
  if (opts.mode === "exec") return execUnderLock(name, () => take(), opts.command!, events, caller!);
  return hold.holdForCaller(take, name, opts.owner, events);
}

/** The modes on a network engine (--backend URL): the engine is chosen here, so that no mode imports one. */
async function runOnBackend(opts: Options, url: string, caller: ReturnType<typeof callerState> | undefined): Promise<number> {
  const [{ connectBackend }, remote] = await Promise.all([import("./backends"), import("./modes/remote")]);
  const backend = await connectBackend(url);
  const name = () => opts.name ?? readNameFromStdin();
  switch (opts.mode) {
    case "list":
      return remote.listRemote(backend, { format: opts.format, all: opts.all, staleOnly: opts.staleOnly, name: opts.name, output: opts.output }, opts.watch);
    case "check":
      return remote.checkRemote(backend, name(), opts.slots, opts.shared);
    case "done":
      return remote.doneRemote(backend, name(), opts.timeout ?? undefined);
    case "acquire": {
      const req = { name: name(), slots: opts.slots, preferred: opts.preferredSlot, shared: opts.shared, timeout: opts.timeout };
      const { holdLeaseForCaller } = await import("./modes/lease-holder");
      return holdLeaseForCaller(url, backend, req, opts.owner, eventsFor(opts, req.name, req.slots));
    }
    case "exec": {
      const lockName = name();
      const events = eventsFor(opts, lockName, opts.slots);
      const command = opts.command!.join(" ");
      const take = async () => {
        const holder = remote.holderDescription(process.pid, process.pid, command);
        const timeout = opts.timeout ?? undefined;
        const waited = remote.waitingNotice(backend, lockName);
        // Until the command runs (src/child.ts then forwards signals to it), a signal ends
        // waitlock, but first withdraws the request, or lets go of a lease won meanwhile: a
        // Redis request would otherwise stay queued, and a lease outlive waitlock, until
        // their expiry. The command never starts once a signal came.
        const giveUp = new AbortController();
        const heeded = heededStopSignals();
        let stoppedBy: (typeof heeded)[number] | undefined;
        const leave = (signal: (typeof heeded)[number]) => {
          stoppedBy ??= signal;
          giveUp.abort();
        };
        for (const signal of heeded) process.on(signal, leave);
        try {
          const won = await backend
            .acquire(lockName, { slots: opts.slots, preferred: opts.preferredSlot, shared: opts.shared, timeout, holder, signal: giveUp.signal })
            .catch((e) => {
              if (stoppedBy) return undefined;
              throw e;
            });
          // (No lease comes back after an abort: Backend.acquire lets go of one won meanwhile.)
          if (!won) process.exit(raiseDefault(stoppedBy!));
          events.taken?.(won.slot);
          return { claim: remote.leaseHolding(won, backend.bounds.grace) };
        } catch (e) {
          throw await remote.namingHolders(e, backend, lockName, opts.timeout);
        } finally {
          waited();
          for (const signal of heeded) process.off(signal, leave);
        }
      };
      return execUnderLock(lockName, take, opts.command!, events, caller!);
    }
  }
  throw new UsageError("--backend", `does not apply to --${opts.mode}`);
}

const modeOf = (opts: Options): LockMode => (opts.shared ? "shared" : "exclusive");

/**
 * The status a mode whose exit status is its answer fails with (errors.ts
 * unansweredStatus); undefined for the other modes. A function, not a table: a literal
 * built at every start costs it (bench/TUNING.md).
 */
const failsWith = (mode: Mode): number | undefined => (mode === "check" ? EXIT.TIMEOUT : mode === "list" ? EXIT.BUSY : undefined);

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
    const status = report(e);
    const failed = failsWith(opts.mode);
    return failed === undefined ? conflictStatus(e, status, opts.conflictExitCode) : unansweredStatus(e, status, failed);
  }
}

function report(thrown: unknown): number {
  // A failure the runtime reports (out of descriptors in one of its calls, say) keeps its cause.
  const e = thrown instanceof WaitlockError ? thrown : (runtimeError("system", thrown) ?? thrown);
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
