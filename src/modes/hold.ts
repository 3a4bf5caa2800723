// waitlock NAME: take a slot for the calling process and hand it to a detached holder
// that keeps it until that process exits (invariant 4).
import { close, fstat, getppid, pollReadable } from "../../ffi/libc";
import { release, type SlotRequest } from "../engine";
import { UsageError, WaitlockError, EXIT } from "../errors";
import { debug } from "../log";
import { runtimeError } from "../syserror";
import { commandLine, exitWatch, hasOpen } from "../procinfo";
import { acquireReporting, describeHolder, recordIn, storeRecord } from "./describe";
import type { RecordForm } from "../options";
import type { Events } from "./events";

/** How to start this same program again (compiled, or run from source by bun). */
function selfCommand(): string[] {
  return Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];
}

/**
 * Is the busy slot open at `fd` already held for `owner`? Its record says so, and the kernel
 * confirms that the holder it names has the file open (a PID alone is never trusted).
 */
function heldFor(owner: number, fd: number, path: string): boolean {
  const record = recordIn(fd, path);
  if (record?.owner !== owner) return false;
  const st = fstat(fd);
  return typeof st !== "number" && hasOpen(record.pid, st.dev, st.ino) !== false;
}

export function holdForCaller(req: SlotRequest, timeout: number | null, ownerOption: number | undefined, form: RecordForm, events: Events): number {
  const owner = ownerOption ?? getppid();
  const watch = exitWatch(owner);
  if (watch.kind === "gone") {
    if (ownerOption !== undefined) throw new UsageError("--owner", `no process with PID ${owner}`);
    throw new WaitlockError(EXIT.SYSTEM, req.name, "the calling process has already exited");
  }
  const closeWatch = () => watch.kind === "pidfd" && close(watch.fd);

  let outcome;
  try {
    outcome = acquireReporting(req, timeout, events, (fd, path) => heldFor(owner, fd, path));
  } catch (e) {
    closeWatch();
    throw e;
  }
  if ("alreadyHeld" in outcome) {
    debug(`'${req.name}' slot ${outcome.alreadyHeld} is already held for process ${owner}`);
    closeWatch();
    return EXIT.OK;
  }

  const held = outcome.held;
  try {
    const exited = watch.kind === "pidfd" ? pollReadable([watch.fd], 0) : [];
    const ownerGone = (ownerOption === undefined && getppid() !== owner) || (Array.isArray(exited) && exited.length > 0);
    if (ownerGone) {
      debug(`process ${owner} exited while we waited; releasing at once`);
      release(held);
      return EXIT.OK;
    }
    const holder = Bun.spawn(
      [...selfCommand(), "__hold", held.path, req.name, String(owner), watch.kind, String(Date.now()), events.holderArgs()],
      {
        stdio: ["ignore", "ignore", "ignore", held.fd, watch.kind === "pidfd" ? watch.fd : "ignore"],
        detached: true,
        cwd: "/",
        env: {},
      },
    );
    holder.unref();
    const command = commandLine(owner);
    storeRecord(held, describeHolder(req, held, holder.pid, owner, command), form);
    debug(`holder process ${holder.pid} keeps '${req.name}' slot ${held.slot} until process ${owner} exits`);
    events.acquired(held.slot, command);
  } catch (e) {
    release(held);
    throw runtimeError(req.name, e) ?? e;
  } finally {
    closeWatch();
  }
  close(held.fd);
  return EXIT.OK;
}
