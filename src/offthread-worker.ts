// The Worker behind offthread.ts: one wait for a slot, in the engine's own way, interrupted
// by the thread that started it. Its answer is the outcome (a held descriptor stays open:
// descriptors are the process's) or the error, after which the thread ends.
import { threadId, waitsInterruptedByCaller } from "../ffi/libc";
import { acquire } from "./engine";
import { BusyError, CancelledError, EXIT, TimeoutError, WaitlockError } from "./errors";
import { setVerbosity } from "./log";
import { ENDED, STATE, STOPPED, type WaitOrder, type WaitReply } from "./offthread";
import { closeSharedWaker, forcePolling } from "./waker";

declare const self: { onmessage: ((event: MessageEvent<WaitOrder>) => void) | null; postMessage(reply: WaitReply): void };

function errorReply(e: unknown, stopped: boolean, timedOut: boolean): WaitReply {
  // An interrupt that lands in a short wait the engine does not expect to be interrupted
  // (entering the turnstile) surfaces as "try again": it was the caller's stop or deadline.
  const interrupted = e instanceof WaitlockError && e.exitCode === EXIT.TEMPFAIL && (stopped || timedOut);
  if (e instanceof CancelledError || (interrupted && stopped)) return { error: { kind: "cancelled", exitCode: EXIT.TIMEOUT, context: (e as WaitlockError).context, message: "" } };
  if (e instanceof TimeoutError || interrupted) return { error: { kind: "timeout", exitCode: EXIT.TIMEOUT, context: (e as WaitlockError).context, message: "" } };
  if (e instanceof BusyError) return { error: { kind: "busy", exitCode: EXIT.BUSY, context: e.context, message: e.message } };
  if (e instanceof WaitlockError) return { error: { kind: "other", exitCode: e.exitCode, context: e.context, message: e.message } };
  return { error: { kind: "other", exitCode: EXIT.SYSTEM, context: "internal error", message: e instanceof Error ? e.message : String(e) } };
}

self.onmessage = ({ data: order }) => {
  waitsInterruptedByCaller();
  setVerbosity({ verbose: order.verbose });
  if (order.polling) forcePolling();
  const words = new Int32Array(order.control);
  self.postMessage({ tid: threadId() });
  const now = () => performance.timeOrigin + performance.now();
  const timeout = order.deadline === null ? null : Math.max(0, (order.deadline - now()) / 1000);
  let reply: WaitReply;
  try {
    reply = { outcome: acquire(order.req, timeout, { stopped: () => Atomics.load(words, STATE) === STOPPED }) };
  } catch (e) {
    reply = errorReply(e, Atomics.load(words, STATE) === STOPPED, order.deadline !== null && now() >= order.deadline);
    if ("error" in reply && reply.error.kind === "timeout") reply.error.seconds = order.seconds ?? 0;
    if ("error" in reply && reply.error.context === "") reply.error.context = order.req.name;
  }
  Atomics.store(words, ENDED, 1);
  self.postMessage(reply);
  closeSharedWaker();
  // Nothing left to listen to: the thread ends.
  self.onmessage = null;
};
