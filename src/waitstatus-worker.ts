// The wait status line's own thread (see src/waitstatus.ts): one line on stderr, redrawn in
// place every second from the second second of the wait on, while this process is in the
// terminal's foreground. Plain carriage returns and spaces: no escape sequence, so a dumb
// terminal shows it right too.
import { readFileSync, writeSync } from "node:fs";
import { statusLine, type Waiting } from "./statusline";

declare const self: Worker;

/** How long a wait stays silent, and how often the line is redrawn (milliseconds). */
const FIRST_MS = 1000;
const EVERY_MS = 1000;

/**
 * Is this process in the foreground of its terminal? A `waitlock NAME &` must not draw over
 * the shell's prompt. /proc/self/stat fields 5 and 8: process group, terminal's foreground
 * group; where /proc cannot tell, yes.
 */
function inForeground(): boolean {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[2] === fields[5];
  } catch {
    return true;
  }
}

function columns(): number {
  return process.stderr.columns || Number(process.env.COLUMNS) || 80;
}

self.onmessage = (event: MessageEvent<{ waiting: Waiting; shared: Int32Array }>) => {
  const { waiting, shared } = event.data;
  const draw = () => {
    // The lock on stderr (src/waitstatus.ts); taken for good once the wait is over.
    if (Atomics.compareExchange(shared, 0, 0, 1) !== 0) {
      clearInterval(timer);
      return;
    }
    try {
      if (!inForeground()) return;
      const line = statusLine(waiting, Date.now(), columns());
      const shown = shared[1]!;
      writeSync(2, `\r${line}${" ".repeat(Math.max(0, shown - line.length))}`);
      shared[1] = Math.max(line.length, shown);
    } finally {
      Atomics.store(shared, 0, 0);
      Atomics.notify(shared, 0);
    }
  };
  let timer: ReturnType<typeof setInterval> | undefined;
  setTimeout(() => {
    draw();
    timer = setInterval(draw, EVERY_MS);
  }, FIRST_MS);
};
