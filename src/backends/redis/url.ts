// The --backend redis:// URL: the form redis-cli and Bun's client take
// (redis[s]://[[user]:password@]host[:port][/db]), with waitlock's own timing keys as
// parameters. rediss:// is TLS. Nothing here ever puts the password in a message: errors
// name the key or the part of the URL at fault, never its text.
import { readFileSync } from "node:fs";
import { UsageError } from "../../errors";
import { checkHeartbeat, checkPort, decodePart, hostLabel, LEASE_TIMING, leaseDurations, parseUrl, timings, type LeaseTarget, type Timing } from "../url";

/** Where locks live and how leases behave; every duration in seconds. */
export interface RedisTarget extends LeaseTarget {
  /** the ACL user (undefined: the default user) */
  user: string | undefined;
  /** the logical database (SELECT): part of the lock space */
  db: number;
  tls: boolean;
  /** PEM text of the CA that signs the server's certificate (cacert=FILE); undefined: the system's CAs */
  ca: string | undefined;
  /** the lease's time to live on the server: a holder that stops extending it loses it this long after its last extension */
  ttl: number;
}

/** waitlock's own keys: name, default, least, most. */
const TIMING: Record<string, Timing> = { ...LEASE_TIMING, ttl: ["ttl", 10, 2, 86400] };

/**
 * Parses and checks a backend URL. The password comes from the URL, else REDISCLI_AUTH
 * (redis-cli's own variable). `cacert=FILE` names a CA for rediss://. Throws UsageError
 * (exit 3) naming the part at fault, never echoing the URL.
 */
export function parseRedisUrl(url: string, env: Record<string, string | undefined> = process.env): RedisTarget {
  const context = "--backend";
  const u = parseUrl(url, ["redis", "rediss"]);
  const hostname = u.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!hostname) throw new UsageError(context, "the URL names no host (redis://HOST[:PORT][/DB])");
  const port = u.port ? Number(u.port) : 6379;
  checkPort(port);
  const user = u.username ? decodePart(u.username, "user name") : undefined;
  const password = u.password ? decodePart(u.password, "password") : env.REDISCLI_AUTH || undefined;
  const path = u.pathname.replace(/^\//, "");
  if (path !== "" && !/^\d{1,5}$/.test(path)) throw new UsageError(context, "the URL path must be a database number (redis://HOST:PORT/DB)");
  const db = path === "" ? 0 : Number(path);

  let ca: string | undefined;
  const timing = timings(u.searchParams, TIMING, (key, value) => {
    if (key !== "cacert") throw new UsageError(context, `unknown URL parameter '${key}' (known: ${[...Object.keys(TIMING), "cacert"].join(", ")})`);
    if (u.protocol !== "rediss:") throw new UsageError(context, "cacert is for rediss:// (TLS) URLs");
    try {
      ca = readFileSync(value, "utf8");
    } catch (e) {
      throw new UsageError(context, `cacert: cannot read ${value} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  });
  const tls = u.protocol === "rediss:";
  const target: RedisTarget = {
    hostname,
    port,
    user,
    password,
    db,
    tls,
    ca,
    ...leaseDurations(timing),
    ttl: timing.ttl!,
    label: hostLabel(hostname, port),
  };
  checkHeartbeat(target);
  if (target.confirmTimeout + 1 >= target.ttl)
    throw new UsageError(context, "confirm_timeout must be more than 1 second shorter than ttl (a lost lease must be noticed before the server lets it expire)");
  if (target.confirmTimeout + target.grace >= target.ttl)
    throw new UsageError(context, "confirm_timeout + grace must be shorter than ttl (a lost lease's command must be killed before the server lets the lease expire)");
  return target;
}

/** The URL as it may be shown: no password, no parameters. */
export const describeTarget = (t: RedisTarget): string => `${t.tls ? "rediss" : "redis"}://${t.user ? `${encodeURIComponent(t.user)}@` : ""}${t.label}/${t.db}`;

/** The URL Bun's client is given (it carries the password: never shown). */
export function clientUrl(t: RedisTarget): string {
  const auth = t.password === undefined ? (t.user ? `${encodeURIComponent(t.user)}@` : "") : `${encodeURIComponent(t.user ?? "")}:${encodeURIComponent(t.password)}@`;
  return `${t.tls ? "rediss" : "redis"}://${auth}${t.label}/${t.db}`;
}
