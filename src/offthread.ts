// Waiting for a lock without blocking the JavaScript thread: for `--serve` (a wait for one
// lock must not hold up answers about others) and the library's acquireAsync (the caller's
// timers keep firing). The engine's wait is a blocking system call in the kernel's queue,
// so it runs in a Worker of its own (offthread-worker.ts), one per pending wait. Descriptors
// belong to the process, so the slot the worker locks is used and released from here.
//
// The worker arms no timer (ITIMER_REAL is one per process): this thread interrupts its
// flock(2) with a SIGALRM sent to that thread alone (interruptThread), at the deadline or
// when the caller gives up, and again every INTERRUPT_REPEAT_MS until the worker has
// answered, in case a signal landed before the call began. A request given up on is
// withdrawn from the kernel's queue by the interrupted call itself; one granted in the
// moment before is released here at once.
import { interruptThread, threadsInterruptible } from "../ffi/libc";
import { release, type Outcome, type SlotRequest } from "./engine";
import { BusyError, CancelledError, EXIT, TimeoutError, WaitlockError } from "./errors";

const INTERRUPT_REPEAT_MS = 10;

/** What the worker is told, and its shared control words (Int32Array over `control`). */
export interface WaitOrder {
  req: SlotRequest;
  /** the deadline in Unix milliseconds (performance.timeOrigin + now()), null: none */
  deadline: number | null;
  /** the caller's whole timeout in seconds, for the message when it runs out */
  seconds: number | null;
  verbose: boolean;
  polling: boolean;
  control: SharedArrayBuffer;
}

/** control[STATE]: RUNNING, or STOPPED by the caller; control[ENDED]: 1 once the worker has answered. */
export const STATE = 0;
export const ENDED = 1;
export const RUNNING = 0;
export const STOPPED = 1;

export type WaitReply =
  | { tid: number }
  | { outcome: Outcome }
  | { error: { kind: "busy" | "timeout" | "cancelled" | "other"; exitCode: number; context: string; message: string; seconds?: number } };

/** The error a worker reported, as the class the engine would have thrown here. */
function rebuild(e: Extract<WaitReply, { error: unknown }>["error"]): WaitlockError {
  if (e.kind === "busy") return new BusyError(e.context);
  if (e.kind === "timeout") return new TimeoutError(e.context, e.seconds ?? 0);
  if (e.kind === "cancelled") return new CancelledError(e.context);
  return new WaitlockError(e.exitCode, e.context, e.message);
}

const now = () => performance.timeOrigin + performance.now();

/** Can waits run off this thread here (a thread's system call can be interrupted: Linux)? */
export const canWaitOffThread = (): boolean => typeof Worker === "function" && threadsInterruptible();

export interface OffThreadOptions {
  /** seconds to wait in all; null: as long as it takes */
  timeout: number | null;
  /** stops the wait: the promise rejects with CancelledError */
  signal?: AbortSignal;
  verbose?: boolean;
  polling?: boolean;
  /**
   * What a waiting thread runs: offthread-worker.ts (the default), or an entry that loads it
   * in threads other than the main one (the compiled executable's, src/main.ts).
   */
  script?: string;
}

/**
 * Waits for a slot of `req` in a Worker, in arrival order like the engine's acquire().
 * Resolves with the engine's outcome (the held descriptor is this process's); rejects with
 * TimeoutError (exit 2) at `timeout`, CancelledError (2) when `signal` aborts, or the
 * engine's WaitlockError (4, 5, 75).
 */
export function waitOffThread(req: SlotRequest, opts: OffThreadOptions): Promise<Outcome> {
  const control = new SharedArrayBuffer(8);
  const words = new Int32Array(control);
  const start = now();
  const order: WaitOrder = {
    req,
    deadline: opts.timeout === null ? null : start + opts.timeout * 1000,
    seconds: opts.timeout,
    verbose: !!opts.verbose,
    polling: !!opts.polling,
    control,
  };
  const worker = new Worker(opts.script ?? new URL("./offthread-worker.ts", import.meta.url).href);
  let tid: number | undefined;
  let interrupting: ReturnType<typeof setInterval> | undefined;
  let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  let settled = false;

  const interrupt = () => {
    if (tid === undefined || Atomics.load(words, ENDED) === 1) return;
    if (interruptThread(tid) < 0) clearInterval(interrupting);
  };
  const startInterrupting = () => {
    if (interrupting !== undefined) return;
    interrupt();
    interrupting = setInterval(interrupt, INTERRUPT_REPEAT_MS);
  };

  return new Promise<Outcome>((resolve, reject) => {
    // The interrupts go on after the caller has its answer, until the worker has answered.
    const finish = () => {
      settled = true;
      clearTimeout(deadlineTimer);
      opts.signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      Atomics.store(words, STATE, STOPPED);
      startInterrupting();
      if (settled) return;
      finish();
      reject(new CancelledError(req.name));
    };
    worker.onmessage = (event: MessageEvent<WaitReply>) => {
      const reply = event.data;
      if ("tid" in reply) {
        tid = reply.tid;
        if (Atomics.load(words, STATE) === STOPPED || (order.deadline !== null && now() >= order.deadline)) startInterrupting();
        return;
      }
      clearInterval(interrupting);
      if (settled) {
        // Granted as the caller gave up: nobody will use it.
        if ("outcome" in reply && "held" in reply.outcome) release(reply.outcome.held);
        return;
      }
      finish();
      if ("outcome" in reply) resolve(reply.outcome);
      else reject(rebuild(reply.error));
    };
    worker.onerror = (event) => {
      if (settled) return;
      finish();
      reject(new WaitlockError(EXIT.SYSTEM, req.name, `waiting thread failed: ${event.message}`));
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    // A timer may fire a little early, and the worker then waits on: interrupt once it is due.
    const atDeadline = () => {
      const left = order.deadline! - now();
      if (left > 0) deadlineTimer = setTimeout(atDeadline, left + 1);
      else startInterrupting();
    };
    if (order.deadline !== null) deadlineTimer = setTimeout(atDeadline, Math.max(0, order.deadline - now()));
    worker.postMessage(order);
  });
}
