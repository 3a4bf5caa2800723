// The wait status line's words (drawn by src/waitstatus-worker.ts). Kept apart from the
// rest of the program: what the worker imports must not be shared with the main entry,
// or the bundler makes it a chunk of its own that every start would load.

/** A duration for people, from whole seconds: `45s`, `3m05s`, `2h07m`, `3d04h`. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

export interface Waiting {
  name: string;
  /** the slot looked at when the wait began (0-based), and how many the lock has */
  slot: number;
  slots: number;
  /** who held that slot then (src/holdertext.ts holderPhrase); null when nobody can tell */
  holder: string | null;
  /** since when it held the slot, Unix seconds; undefined when unknown */
  heldSince?: number;
  /** when the wait began, milliseconds since the epoch */
  since: number;
}

/**
 * The wait status line: `waitlock: waiting 12s for 'db' slot 0/1, held 3m05s by PID 4242
 * (sleep 30)`, cut to `columns` - 1 characters. `now` in milliseconds since the epoch.
 */
export function statusLine(w: Waiting, now: number, columns: number): string {
  const held = w.holder === null ? "held by a process that left no record" : `held${w.heldSince === undefined ? "" : ` ${duration(now / 1000 - w.heldSince)}`} by ${w.holder}`;
  const line = `waitlock: waiting ${duration((now - w.since) / 1000)} for '${w.name}' slot ${w.slot}/${w.slots}, ${held}`;
  return line.length < columns ? line : `${line.slice(0, Math.max(0, columns - 4))}...`;
}
