// waitlock --backend URL NAME: a plain acquire on a network engine. A session cannot be
// handed to another process as a locked descriptor can, so the detached holder takes the
// lease itself and keeps its session (heartbeats, renewals) until the owner exits; the
// waitlock the caller ran waits for its answer on a pipe and exits with it.
//
// The holder learns at once, without looking again and again, that the owner has exited: a
// thread of its own sleeps on the owner's pidfd (opened by the waitlock the caller ran, passed
// as fd 3) or on a kqueue (procinfo.ts whenExits; polling only where neither can be had), so
// that this thread's event loop goes on renewing the lease. That the waitlock it answers is
// gone, it learns from its stdin: a pipe whose other end only that waitlock holds.
import type { FileSink } from "bun";
import { closeSync, writeSync } from "node:fs";
import { close, getppid, kill, signalNumber } from "../../ffi/libc";
import type { Backend, Lease } from "../backend";
import { BusyError, EXIT, TimeoutError, WaitlockError } from "../errors";
import { sameProcess, startedAt } from "../holders";
import { debug } from "../log";
import { commandLine, ownerToHold, selfCommand, whenExits, type ExitWatch } from "../procinfo";
import type { Events } from "../events";
import { syslogEvents } from "../events";
import { holderDescription, namingHolders, waitingNotice } from "./remote";
import { heededStopSignals, raiseDefault } from "../child";
import { keepsFor } from "./owner";

/** What the detached holder is asked to take, and for whom (its one argument, as JSON). */
interface LeaseOrder {
  name: string;
  slots: number;
  preferred?: number;
  shared: boolean;
  /** seconds; null waits for ever */
  timeout: number | null;
  owner: number;
  ownerStart?: number;
  /** how the holder learns of the owner's exit (exitWatch; a pidfd is its fd 3) */
  watch: ExitWatch["kind"];
  command: string;
  /** the waitlock that waits for the answer: the holder gives up when it is gone */
  parent: number;
  /** syslog facility for the release line, "" for none */
  facility: string;
}

/** The holder's one line of answer on its stdout. */
type Answer = { slot: number; token: string } | { alreadyHeld: number } | { exit: number; context: string; message: string };

/** Where the holder finds the owner's pidfd. */
const OWNER_FD = 3;

/**
 * How long a waiting holder goes without its owner's watch (milliseconds): the thread that
 * watches is started once the lease is held, or once the wait has lasted this long, so
 * that it does not compete for the CPU with a first try that wins (bench/TUNING.md). An
 * owner that exited before is seen as soon as the watch starts.
 */
const WATCH_AFTER_MS = 100;

/**
 * Takes a slot of `req.name` on the engine at `url` for the owner (`ownerOption`, else the
 * calling process) through a detached holder process, and returns 0 once it holds it
 * (or the owner already held it). The URL reaches the holder in its environment, never its
 * argv. Throws what the engine's acquire throws (BusyError 1, TimeoutError 2, 75, 5, 3),
 * UsageError for a missing --owner, WaitlockError 4 when the caller is gone or the holder
 * ended without an answer, 75 when out of descriptors for the owner's pidfd.
 */
export async function holdLeaseForCaller(
  url: string,
  backend: Backend,
  req: { name: string; slots: number; preferred?: number; shared: boolean; timeout: number | null },
  ownerOption: number | undefined,
  events: Events,
): Promise<number> {
  const { owner, watch } = ownerToHold(ownerOption, req.name);
  const command = commandLine(owner);
  const order: LeaseOrder = { ...req, owner, ownerStart: startedAt(owner), watch: watch.kind, command, parent: process.pid, facility: events.holderArgs() };
  // Interrupted while the holder waits, the holder gives the wait up at once (its session
  // ends, and the engine withdraws the request) rather than win a lock nobody asked for.
  let holder: ReturnType<typeof Bun.spawn> | undefined;
  const heeded = heededStopSignals();
  const giveUp = (signal: (typeof heeded)[number]) => {
    holder?.kill("SIGTERM");
    process.exit(raiseDefault(signal));
  };
  for (const signal of heeded) process.on(signal, giveUp);
  // Its stdin is a pipe that nothing is written to: it ends when this process does.
  holder = Bun.spawn([...selfCommand(), "__lease", JSON.stringify(order)], {
    stdio: ["pipe", "pipe", "ignore", watch.kind === "pidfd" ? watch.fd : "ignore"],
    detached: true,
    cwd: "/",
    env: { ...process.env, WAITLOCK_BACKEND: url },
  });
  if (watch.kind === "pidfd") close(watch.fd);
  const waited = waitingNotice(backend, req.name);
  const text = await new Response(holder.stdout as ReadableStream<Uint8Array>).text();
  waited();
  for (const signal of heeded) process.off(signal, giveUp);
  let answer: Answer;
  try {
    answer = JSON.parse(text);
  } catch {
    throw new WaitlockError(EXIT.SYSTEM, req.name, `the holder process ${holder.pid} ended without an answer`);
  }
  if ("exit" in answer) {
    if (answer.exit === EXIT.BUSY) throw await namingHolders(new BusyError(req.name), backend, req.name, req.timeout);
    if (answer.exit === EXIT.TIMEOUT && req.timeout !== null) throw await namingHolders(new TimeoutError(req.name, req.timeout), backend, req.name, req.timeout);
    throw new WaitlockError(answer.exit, answer.context, answer.message);
  }
  holder.unref();
  if ("alreadyHeld" in answer) {
    debug(`'${req.name}' slot ${answer.alreadyHeld} is already held for process ${owner}`);
    events.taken?.(answer.alreadyHeld);
    return EXIT.OK;
  }
  debug(`holder process ${holder.pid} keeps '${req.name}' slot ${answer.slot} (token ${answer.token}) until process ${owner} exits`);
  events.taken?.(answer.slot);
  events.acquired(answer.slot, command);
  // The last thing before exiting 0: the holder lets go should this process die before it.
  const input = holder.stdin as FileSink;
  input.write(HEARD);
  input.flush();
  return EXIT.OK;
}

/** What the waitlock the caller ran tells its holder, just before it exits 0, once it has the answer. */
const HEARD = "heard\n";

/** Answers the waitlock that asked; false when it is gone (nobody reads the pipe). */
function say(answer: Answer): boolean {
  try {
    writeSync(1, `${JSON.stringify(answer)}\n`);
    closeSync(1);
    return true;
  } catch {
    return false;
  }
}

/**
 * The detached holder (`waitlock __lease ORDER`, started by holdLeaseForCaller): takes the
 * lease on `backend`, answers, and keeps it until the owner exits, `waitlock --done` asks
 * (a "stop" request SIGTERMs the owner first), or SIGTERM/SIGINT/SIGHUP. A lost lease
 * SIGTERMs the owner (SPEC "Who is stopped"), lets go once the owner is gone (within the
 * grace period) and exits 7. Returns the exit status.
 */
export async function runLeaseHolder(backend: Backend, orderText: string): Promise<number> {
  const o = JSON.parse(orderText) as LeaseOrder;
  const sigterm = signalNumber("SIGTERM")!;
  let ownerWatch: Promise<void> | undefined;
  const ownerGone = () => (ownerWatch ??= whenExits(o.owner, o.ownerStart, o.watch, OWNER_FD));
  // While waiting, a waitlock killed with ^C leaves no one to answer, an owner gone needs
  // no lock, and a signal says to stop: each gives the wait up, withdrawn from the engine's
  // queue at once.
  const giveUp = new AbortController();
  let waiting = true;
  const stopWaiting = () => waiting && giveUp.abort();
  const watchLater = setTimeout(() => ownerGone().then(stopWaiting), WATCH_AFTER_MS);
  const input = new Response(Bun.stdin.stream()).text().catch(() => "");
  input.then(stopWaiting);
  let lease: Lease | undefined;
  let acquiredAt = 0;
  const finish = async (code: number): Promise<number> => {
    if (!lease) {
      giveUp.abort();
      return code;
    }
    await lease.release();
    if (o.facility) syslogEvents(o.facility, o.name, o.slots).released(acquiredAt ? (Date.now() - acquiredAt) / 1000 : 0);
    process.exit(code);
  };
  for (const signal of heededStopSignals()) process.on(signal, () => finish(EXIT.OK));
  try {
    const started = performance.now();
    const holder = holderDescription(process.pid, o.owner, o.command);
    // -t bounds the whole call, this look included (never below the second a round trip may take).
    const left = () => (o.timeout === null ? undefined : Math.max(0, o.timeout - (performance.now() - started) / 1000));
    const ours = async () => {
      const rows = await backend.list({ name: o.name, timeout: o.timeout === null ? undefined : Math.max(1, left()!) });
      await backend.close();
      // On this host, the holder process tells its owner from a later one under its PID.
      return rows.find((h) => h.status === "active" && h.host === holder.host && h.owner === o.owner && h.slots === o.slots && (o.shared || h.shared === false) && (h.pid === null || keepsFor(h.pid, o.ownerStart)));
    };
    // A wait must not be for a lock the owner holds already, nor may a free slot of a
    // semaphore, or a reader's hold beside the owner's, be taken beside the one it holds: a
    // single exclusive try at a mutex looks only when busy.
    let mine = o.timeout === 0 && o.slots === 1 && !o.shared ? undefined : await ours();
    const taken = mine
      ? undefined
      : await backend.acquire(o.name, { slots: o.slots, preferred: o.preferred, shared: o.shared, timeout: o.timeout === 0 ? 0 : left(), holder, signal: giveUp.signal }).catch(async (e) => {
          if (e instanceof BusyError && (mine = await ours())) return undefined;
          throw e;
        });
    if (!taken) {
      say({ alreadyHeld: mine?.slot ?? 0 });
      return EXIT.OK;
    }
    lease = taken;
  } catch (e) {
    const err = e instanceof WaitlockError ? e : new WaitlockError(EXIT.SYSTEM, o.name, (e as Error).message);
    say({ exit: err.exitCode, context: err.context, message: err.message });
    return err.exitCode;
  }
  waiting = false;
  clearTimeout(watchLater);
  acquiredAt = Date.now();
  // Killed before it could hear of the lock, the waitlock the caller ran failed: the
  // caller must not be left holding a lock it does not know of.
  if (getppid() !== o.parent || !say({ slot: lease.slot, token: lease.token })) return finish(EXIT.OK);
  let held = true;
  ownerGone().then(() => {
    if (held) finish(EXIT.OK);
  });
  lease.requested.then((request) => {
    if (request === "stop" && sameProcess(o.owner, o.ownerStart)) kill(o.owner, sigterm);
    finish(EXIT.OK);
  });
  // Killed after the answer came but before it could exit 0, it failed all the same.
  if ((await input) !== HEARD) return finish(EXIT.OK);
  const lost = await lease.lost;
  held = false;
  debug(`${lost.message}: SIGTERM to the owner, process ${o.owner}`);
  if (sameProcess(o.owner, o.ownerStart)) kill(o.owner, sigterm);
  // Once the owner is gone (within the grace period), let go at once, as --exec does after
  // its command: a lease the engine still counts ours (Redis) is freed now, not at its ttl.
  await Promise.race([ownerGone(), Bun.sleep(backend.bounds.grace * 1000)]);
  if (!sameProcess(o.owner, o.ownerStart)) await lease.release();
  return lost.exitCode;
}
