// The wait status line's own thread (see src/waitstatus.ts): one line on stderr, redrawn in
// place every second from the second second of the wait on, while this process is in the
// terminal's foreground, and at once when the terminal's width changes.
//
// Between drawings the cursor rests at the start of the line. A terminal that is made
// narrower rewraps a line wider than itself onto the rows below (tmux, VTE, kitty...) or
// cuts it (xterm); either way the line starts where the cursor is. So a drawing saves the
// cursor (DECSC), erases that row and as many below as the old line can now cover (EL and
// cursor down, which never scrolls), restores the cursor (DECRC) and writes the new line,
// cut to the new width. Not ED (erase to the end of the screen): tmux moves a screen
// cleared from its top-left corner into the history, where the old line would stay. Under
// TERM=dumb, plain carriage returns and spaces instead.
import { readFileSync, writeSync } from "node:fs";
import { statusLine, type Waiting } from "./statusline";

declare const self: Worker;

/** How long a wait stays silent, and how often the line is redrawn (milliseconds). */
const FIRST_MS = 1000;
const EVERY_MS = 1000;
/** How often the terminal's width is looked at, so that a resize is redrawn at once (milliseconds). */
const RESIZE_MS = 100;

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

/**
 * The terminal's width now. A worker gets no SIGWINCH, so its stderr's `columns` keeps the
 * width it started with: _refreshSize() asks the terminal again (TIOCGWINSZ), as Node's and
 * Bun's own SIGWINCH handler does on the main thread.
 */
function columns(): number {
  const stderr = process.stderr as typeof process.stderr & { _refreshSize?: () => void };
  stderr._refreshSize?.();
  return stderr.columns || Number(process.env.COLUMNS) || 80;
}

const dumb = process.env.TERM === "dumb";

self.onmessage = (event: MessageEvent<{ waiting: Waiting; shared: Int32Array }>) => {
  const { waiting, shared } = event.data;
  let width = 0;
  const timers: ReturnType<typeof setInterval>[] = [];
  const draw = () => {
    // The lock on stderr (src/waitstatus.ts); taken for good once the wait is over.
    if (Atomics.compareExchange(shared, 0, 0, 1) !== 0) {
      for (const t of timers) clearInterval(t);
      return;
    }
    try {
      width = columns();
      if (!inForeground()) return;
      const line = statusLine(waiting, Date.now(), width);
      const shown = shared[1]!;
      if (dumb) {
        writeSync(2, `\r${line}${" ".repeat(Math.max(0, Math.min(shown, width - 1) - line.length))}`);
        shared[1] = Math.max(line.length, shown);
      } else {
        const rows = Math.max(1, Math.ceil(shown / width));
        writeSync(2, `\r\x1b7\x1b[K${"\x1b[B\x1b[K".repeat(rows - 1)}\x1b8${line}\r`);
        shared[1] = line.length;
      }
    } finally {
      Atomics.store(shared, 0, 0);
      Atomics.notify(shared, 0);
    }
  };
  setTimeout(() => {
    draw();
    timers.push(
      setInterval(draw, EVERY_MS),
      setInterval(() => {
        if (columns() !== width) draw();
      }, RESIZE_MS),
    );
  }, FIRST_MS);
};
