// waitlock --list --watch [SECONDS]: the listing (of the lock directory or a network engine,
// src/modes/list.ts ListingSource) again every SECONDS until SIGINT, SIGTERM
// or SIGHUP (exit 0). With stdout a terminal, a live view redrawn in place on the
// terminal's alternate screen, given back as it was on the way out; otherwise each
// listing after a line with the time; with -o FILE, that file replaced each time.
import { isatty } from "../../ffi/libc";
import { writeAtomically } from "../atomicfile";
import { EXIT } from "../errors";
import { humanLines, localTime } from "../format";
import { restoreJit, listingText, nothingListed, toStdout, type ListingLook, type ListingSource, type ListOptions } from "./list";
import { STOP_SIGNALS } from "../child";


/** The view of one moment: a title line with the time, a blank line, the tables (with HELD and WAITED). */
function viewLines({ listing, where }: ListingLook, opts: ListOptions, interval: number, now: number, width?: number): string[] {
  const what = opts.file !== undefined ? ` --file ${opts.file}` : opts.name === undefined ? "" : ` ${opts.name}`;
  const left = `Every ${interval}s: waitlock --list${what}${where}`;
  const held = listing.holders.filter((r) => r.status === "active").length;
  const right = `${held} held, ${listing.waiters.length} waiting  ${localTime(now)}`;
  const gap = width === undefined ? 2 : Math.max(2, width - left.length - right.length);
  const body = listing.holders.length + listing.waiters.length === 0 ? [nothingListed(opts)] : humanLines(listing, { withStatus: opts.all || opts.staleOnly, now });
  return [`${left}${" ".repeat(gap)}${right}`, "", ...body];
}

/** `line` cut to `columns` terminal cells (a wide character takes two). */
function cut(line: string, columns: number): string {
  let out = "";
  let used = 0;
  for (const c of line) {
    used += Bun.stringWidth(c);
    if (used > columns) break;
    out += c;
  }
  return out;
}

/** The terminal on stdout, drawn on its alternate screen with the cursor hidden, as top(1) and watch(1) do. */
class LiveScreen {
  private readonly fs = require("node:fs") as typeof import("node:fs");

  enter(): void {
    this.fs.writeSync(1, "\x1b[?1049h\x1b[?25l");
  }

  /** Draws `lines` from the top left, each cut to the width, as many as fit the height. */
  draw(lines: string[]): void {
    const { columns = 80, rows = 24 } = process.stdout;
    const shown = lines.length > rows ? [...lines.slice(0, rows - 1), `... ${lines.length - rows + 1} more lines`] : lines;
    const fitted = shown.map((line) => cut(line, columns));
    // Home, each line then the rest of it cleared, then the rest of the screen: no flicker of a full clear.
    this.fs.writeSync(1, `\x1b[H${fitted.map((l) => `${l}\x1b[K`).join("\r\n")}\x1b[J`);
  }

  /** The cursor shown again and the screen that was there before. */
  leave(): void {
    this.fs.writeSync(1, "\x1b[?25h\x1b[?1049l");
  }
}

/**
 * Lists the locks of `source` (the lock directory or a network engine; a fresh look each
 * time) every `interval` seconds until a stop signal; returns 0 then. Each look is taken
 * afresh (never two at once); a slow one delays the next rather than bunching them.
 * Throws what listLocks throws, after giving the terminal back.
 */
export async function watchLocks(source: ListingSource, opts: ListOptions, interval: number): Promise<number> {
  restoreJit();
  const screen = opts.output === undefined && isatty(1) ? new LiveScreen() : undefined;
  let stopped = false;
  let wake = () => {};
  const stop = () => {
    stopped = true;
    wake();
  };
  // A resized terminal is drawn again at once.
  const redraw = () => wake();
  for (const signal of STOP_SIGNALS) process.on(signal, stop);
  if (screen) process.on("SIGWINCH", redraw);
  screen?.enter();
  try {
    let due = performance.now();
    for (let first = true; !stopped; first = false) {
      const now = Date.now() / 1000;
      const look = await source();
      if (opts.output !== undefined) writeAtomically(opts.output, await listingText(look, opts, now));
      else if (screen) screen.draw(viewLines(look, opts, interval, now, process.stdout.columns));
      else if (!(await toStdout(`${first ? "" : "\n"}${viewLines(look, opts, interval, now).join("\n")}\n`))) break;
      due = Math.max(due + interval * 1000, performance.now());
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, due - performance.now());
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return EXIT.OK;
  } finally {
    screen?.leave();
    for (const signal of STOP_SIGNALS) process.off(signal, stop);
    process.off("SIGWINCH", redraw);
  }
}
