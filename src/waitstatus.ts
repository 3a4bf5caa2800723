// The status line a waiter shows on a terminal. The waiting thread sleeps in the kernel and
// runs no JavaScript until the wait ends, so the line is drawn by a worker thread
// (src/waitstatus-worker.ts, its own entry point in the executable: package.json's build).
// This side only starts it and, when the wait ends, takes the terminal back.
import type { Waiting } from "./statusline";

export interface WaitStatus {
  /** Clears the line (if one is shown) before returning; the worker draws no more. */
  stop(): void;
}

/**
 * Starts the status line for `waiting` on stderr, which must be a terminal. The worker
 * shows it after a second and updates it in place every second.
 */
export function startWaitStatus(waiting: Waiting): WaitStatus {
  // [0]: who may write to stderr, a lock (0 free, 1 taken) that the worker takes for each
  // drawing and this side takes for good when the wait ends; [1]: the length of the line
  // shown (under TERM=dumb the longest one, which the spaces that clear it must cover).
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(new URL("./waitstatus-worker.ts", import.meta.url).href);
  worker.unref();
  worker.postMessage({ waiting, shared });
  return {
    stop() {
      while (Atomics.compareExchange(shared, 0, 0, 1) !== 0) Atomics.wait(shared, 0, 1, 10);
      const shown = shared[1]!;
      if (shown > 0) {
        const { writeSync } = require("node:fs") as typeof import("node:fs");
        // The cursor rests at the start of the line, which fits on its row (src/waitstatus-worker.ts):
        // erase the row (EL). A resize in the last moment before this, not redrawn yet, may
        // leave the rows the terminal rewrapped the line onto.
        writeSync(2, process.env.TERM === "dumb" ? `\r${" ".repeat(shown)}\r` : "\r\x1b[K");
      }
      worker.terminate();
    },
  };
}
