// `--list -f prometheus`: the state of the locks as metrics, in the Prometheus text
// exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats), as
// node_exporter's textfile collector reads it. Names follow prometheus.io/docs/practices/
// naming: a `waitlock_` prefix, snake_case, base units (`_seconds`). Every sample is a
// gauge without a timestamp (the textfile collector refuses timestamps). A pure function
// of the listing, so that it can be tested alone.
import type { Listing } from "./format";

interface Family {
  name: string;
  help: string;
  /** the value for one lock at `now` (Unix seconds); undefined: no sample for it */
  value(stats: LockStats, now: number): number | undefined;
}

interface LockStats {
  /** N, the slots of the lock, as its holders' records say */
  slots: number | undefined;
  heldSlots: Set<number>;
  holders: number;
  waiters: number;
  /** Unix seconds */
  oldestHolder: number | undefined;
  oldestWaiter: number | undefined;
  stale: number;
  corrupt: number;
}

/** The metrics, in the order they are written (man/waitlock.1 documents each). */
export const FAMILIES: readonly Family[] = [
  { name: "waitlock_slots", help: "Slots of the lock (N of -m N; 1 for a mutex), as the records of its holders say.", value: (s) => s.slots },
  { name: "waitlock_held_slots", help: "Slots of the lock held now, as the kernel says.", value: (s) => s.heldSlots.size },
  { name: "waitlock_holders", help: "Processes holding a slot of the lock now (a slot inherited by several processes counts each).", value: (s) => s.holders },
  { name: "waitlock_waiters", help: "Processes queued for the lock now.", value: (s) => s.waiters },
  { name: "waitlock_oldest_holder_age_seconds", help: "Seconds since the longest-held slot of the lock was acquired.", value: (s, now) => age(s.oldestHolder, now) },
  { name: "waitlock_oldest_waiter_age_seconds", help: "Seconds since the longest waiter for the lock joined its queue.", value: (s, now) => age(s.oldestWaiter, now) },
  { name: "waitlock_stale_records", help: "Records of the lock whose slot nobody holds (a holder killed before it could clean up).", value: (s) => s.stale },
  { name: "waitlock_corrupt_records", help: "Slot files of the lock whose record does not decode.", value: (s) => s.corrupt },
];

/** Seconds from `since` to `now`, to the millisecond. */
const age = (since: number | undefined, now: number) => (since === undefined ? undefined : Math.max(0, Math.round((now - since) * 1000) / 1000));

/** A label value: backslash, double quote and line feed escaped, as the format requires. */
export function labelValue(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** HELP text: backslash and line feed escaped. */
export function helpText(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function statsOf(listing: Listing): Map<string, LockStats> {
  const locks = new Map<string, LockStats>();
  const of = (name: string) => {
    let s = locks.get(name);
    if (!s) {
      s = { slots: undefined, heldSlots: new Set(), holders: 0, waiters: 0, oldestHolder: undefined, oldestWaiter: undefined, stale: 0, corrupt: 0 };
      locks.set(name, s);
    }
    return s;
  };
  const earlier = (a: number | undefined, b: number | null) => (b === null ? a : a === undefined ? b : Math.min(a, b));
  for (const r of listing.holders) {
    const s = of(r.descriptor);
    if (r.status === "stale") s.stale++;
    else if (r.status === "corrupt") s.corrupt++;
    // On an engine, a corrupt row is a lock in waitlock's space that nobody described
    // (another program's): held all the same.
    if (r.status === "active" || (r.status === "corrupt" && listing.network)) {
      s.holders++;
      s.heldSlots.add(r.slot);
      s.oldestHolder = earlier(s.oldestHolder, r.acquired);
      if (r.maxHolders !== null) s.slots = Math.max(s.slots ?? 0, r.maxHolders);
    }
  }
  for (const w of listing.waiters) {
    const s = of(w.descriptor);
    s.waiters++;
    s.oldestWaiter = earlier(s.oldestWaiter, w.waitingSince);
  }
  return locks;
}

/**
 * The exposition text for `listing` (every record, stale and corrupt ones included), ages
 * measured up to `now` (Unix seconds), each sample labelled with the lock directory
 * `lockDir` and the lock's NAME. Every family has its HELP and TYPE lines, samples or not.
 */
export function prometheusText(listing: Listing, now: number, lockDir: string | undefined): string {
  const locks = statsOf(listing);
  const names = [...locks.keys()].sort();
  const dirLabel = lockDir === undefined ? "" : `lock_dir="${labelValue(lockDir)}",`;
  const lines: string[] = [];
  for (const family of FAMILIES) {
    lines.push(`# HELP ${family.name} ${helpText(family.help)}`, `# TYPE ${family.name} gauge`);
    for (const name of names) {
      const value = family.value(locks.get(name)!, now);
      if (value !== undefined) lines.push(`${family.name}{${dirLabel}lock="${labelValue(name)}"} ${value}`);
    }
  }
  return lines.join("\n") + "\n";
}
