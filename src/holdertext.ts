// Holders as people read about them: in the busy and timeout messages, in --done's answer
// and on the wait status line. Pure functions of what src/slotclaim.ts found out.

export interface Holder {
  pid: number;
  /** what it runs, "" when unknown */
  command: string;
  /** when it took the slot, Unix seconds; undefined when unknown */
  since?: number;
}

/** The longest command shown in a one-line message. */
const COMMAND_COLUMNS = 60;

/**
 * Unicode's format controls that reorder or hide text on a terminal: zero-width characters,
 * bidirectional marks, overrides and isolates, the Arabic letter mark, line and paragraph
 * separators, the byte-order mark.
 */
const INVISIBLE = "\u061c\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff";

/**
 * A command line on one line, fit for a terminal: control characters (C0, DEL, C1: line
 * breaks, escape sequences a holder could plant) and INVISIBLE ones blanked, cut to `max` characters with "...".
 */
export function oneLine(command: string, max = COMMAND_COLUMNS): string {
  let out = "";
  for (const c of command) out += c < " " || (c >= "\x7f" && c <= "\x9f") || INVISIBLE.includes(c) ? " " : c;
  return out.length > max ? `${out.slice(0, max - 3)}...` : out;
}

/** `PID 4242 (sleep 30)`, or `PID 4242` when its command is unknown. */
export function holderPhrase(h: Holder): string {
  const command = oneLine(h.command);
  return command ? `PID ${h.pid} (${command})` : `PID ${h.pid}`;
}

/**
 * `PID 1 (a)`, `PID 1 (a) and PID 2 (b)`, or with `more` (holders not looked at)
 * `PID 1 (a), PID 2 (b) and others`.
 */
export function holdersPhrase(holders: readonly Holder[], more = false): string {
  const phrases = holders.map(holderPhrase);
  if (more) return `${phrases.join(", ")} and others`;
  const last = phrases.pop()!;
  return `${phrases.length ? `${phrases.join(", ")} and ` : ""}${last}`;
}

/** `held by ` and holdersPhrase(); "" when no holder is known. */
export function heldBy(holders: readonly Holder[], more = false): string {
  return holders.length === 0 ? "" : `held by ${holdersPhrase(holders, more)}`;
}
