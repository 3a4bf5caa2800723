// What the backend URLs (postgres://, redis://) share: percent-decoding that names the part
// at fault, and waitlock's own duration keys, each checked against its range. Messages never
// echo the URL (it may hold a password).
import { UsageError } from "../errors";

const CONTEXT = "--backend";

/** A duration key: the field it sets, its default, least and most (seconds). */
export type Timing = readonly [field: string, fallback: number, least: number, most: number];

/** What every engine's target says about its server and its leases; durations in seconds. */
export interface LeaseTarget {
  hostname: string;
  port: number;
  /** undefined: none is sent (or, PostgreSQL, the password file is asked) */
  password: string | undefined;
  /** connecting, and every round trip but a wait for a lock, gives up after this long (exit 75) */
  connectTimeout: number;
  /** a held lease is checked (PostgreSQL) or extended (Redis) this often */
  heartbeat: number;
  /** a lease whose check is not confirmed within this long of being sent is lost (exit 7) */
  confirmTimeout: number;
  /** a lost lease's command gets SIGTERM, and SIGKILL this long after */
  grace: number;
  /** `host:port`, for messages */
  label: string;
}

/** The duration keys every engine takes (name, default, least, most); each adds its own. */
export const LEASE_TIMING: Record<string, Timing> = {
  connect_timeout: ["connectTimeout", 10, 1, 3600],
  heartbeat: ["heartbeat", 1, 0.05, 1],
  confirm_timeout: ["confirmTimeout", 2, 0.1, 3600],
  grace: ["grace", 5, 0, 3600],
};

/** The durations every engine takes, from timings()' result. */
export function leaseDurations(t: Record<string, number>): Pick<LeaseTarget, "connectTimeout" | "heartbeat" | "confirmTimeout" | "grace"> {
  return { connectTimeout: t.connectTimeout!, heartbeat: t.heartbeat!, confirmTimeout: t.confirmTimeout!, grace: t.grace! };
}

/**
 * `url` parsed, its scheme one of `schemes` (without the colon; the first names the form in
 * messages). Throws UsageError (3) for anything else, never echoing the URL.
 */
export function parseUrl(url: string, schemes: string[]): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(CONTEXT, `not a valid ${schemes[0]}:// URL`);
  }
  if (!schemes.includes(u.protocol.slice(0, -1))) throw new UsageError(CONTEXT, `unsupported scheme '${u.protocol.slice(0, -1)}'`);
  return u;
}

/** `host:port` for messages, an IPv6 address in brackets. */
export const hostLabel = (hostname: string, port: number): string => `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;

/** Throws UsageError (3) unless `port` is a TCP port. */
export function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(CONTEXT, "the port must be 1..65535");
}

/** Throws UsageError (3) unless a lease is checked more often than a check may take. */
export function checkHeartbeat(t: LeaseTarget): void {
  if (t.heartbeat >= t.confirmTimeout) throw new UsageError(CONTEXT, "heartbeat must be shorter than confirm_timeout");
}

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
