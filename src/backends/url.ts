// What the backend URLs (postgres://, redis://) share: percent-decoding that names the part
// at fault, and waitlock's own duration keys, each checked against its range. Messages never
// echo the URL (it may hold a password).
import { UsageError } from "../errors";

const CONTEXT = "--backend";

/** A duration key: the field it sets, its default, least and most (seconds). */
export type Timing = readonly [field: string, fallback: number, least: number, most: number];

/** `s` percent-decoded; throws UsageError (3) naming `part` ("password", "user name"...). */
export function decodePart(s: string, part: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new UsageError(CONTEXT, `the ${part} in the URL is not valid percent-encoding`);
  }
}

/**
 * The durations in `params` by `table`'s keys (defaults for those not given), as field →
 * seconds; every other key goes to `other`. Throws UsageError (3) naming a key out of range.
 */
export function timings(params: URLSearchParams, table: Record<string, Timing>, other: (key: string, value: string) => void): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [field, fallback] of Object.values(table)) out[field] = fallback;
  for (const [key, value] of params) {
    const timing = table[key];
    if (!timing) {
      other(key, value);
      continue;
    }
    const [field, , least, most] = timing;
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < least || n > most) throw new UsageError(CONTEXT, `${key} must be a number of seconds from ${least} to ${most}`);
    out[field] = n;
  }
  return out;
}
