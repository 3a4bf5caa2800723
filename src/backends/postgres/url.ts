// The --backend postgres:// URL: libpq's form (postgres[ql]://user:password@host:port/database?key=value),
// with waitlock's own timing keys next to the TLS keys. Nothing here ever puts the password
// in a message: errors name the key or the part of the URL at fault, never its text.
import { UsageError } from "../../errors";
import { loginName } from "../../users";
import { checkHeartbeat, checkPort, decodePart, hostLabel, LEASE_TIMING, leaseDurations, parseUrl, timings, type LeaseTarget, type Timing } from "../url";

export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
const SSL_MODES: readonly SslMode[] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/** Where locks live and how the sessions behave; every duration in seconds. */
export interface PostgresTarget extends LeaseTarget {
  user: string;
  database: string;
  sslmode: SslMode;
  /** sslrootcert, sslcert, sslkey, sslpassword, channel_binding as given (Bun's own keys) */
  tls: Record<string, string>;
  /** the server frees the locks of a host that went silent between this long less 1 s and this long */
  releaseTimeout: number;
}

/** waitlock's own keys: name, default, least, most. */
const TIMING: Record<string, Timing> = { ...LEASE_TIMING, release_timeout: ["releaseTimeout", 9, 2, 86400] };
const TLS_KEYS = ["sslrootcert", "sslcert", "sslkey", "sslpassword", "channel_binding"];

/**
 * Parses and checks a backend URL. Defaults follow libpq: user PGUSER or the login name,
 * database PGDATABASE or the user, password PGPASSWORD, sslmode PGSSLMODE or `prefer`.
 * Throws UsageError (exit 3) naming the part at fault, never echoing the URL.
 */
export function parsePostgresUrl(url: string, env: Record<string, string | undefined> = process.env): PostgresTarget {
  const context = "--backend";
  const u = parseUrl(url, ["postgres", "postgresql"]);
  const hostname = (u.hostname || env.PGHOST || "").replace(/^\[(.*)\]$/, "$1");
  if (!hostname || hostname.startsWith("/")) throw new UsageError(context, "the URL names no host (postgres://HOST[:PORT]/DATABASE)");
  const port = u.port ? Number(u.port) : env.PGPORT ? Number(env.PGPORT) : 5432;
  checkPort(port);
  const user = u.username ? decodePart(u.username, "user name") : env.PGUSER || loginName(env);
  const password = u.password ? decodePart(u.password, "password") : env.PGPASSWORD || undefined;
  const path = decodePart(u.pathname.replace(/^\//, ""), "database name");
  if (path.includes("/")) throw new UsageError(context, "the URL path must be one database name");
  const database = path || env.PGDATABASE || user;

  let sslmode = (env.PGSSLMODE || "prefer") as SslMode;
  const tls: Record<string, string> = {};
  const timing = timings(u.searchParams, TIMING, (key, value) => {
    if (key === "sslmode") sslmode = value as SslMode;
    else if (TLS_KEYS.includes(key)) tls[key] = value;
    else throw new UsageError(context, `unknown URL parameter '${key}' (known: ${[...Object.keys(TIMING), "sslmode", ...TLS_KEYS].join(", ")})`);
  });
  if (!SSL_MODES.includes(sslmode)) throw new UsageError(context, `sslmode must be one of ${SSL_MODES.join(", ")}`);
  const target: PostgresTarget = {
    hostname,
    port,
    user,
    password,
    database,
    sslmode,
    tls,
    ...leaseDurations(timing),
    releaseTimeout: timing.releaseTimeout!,
    label: hostLabel(hostname, port),
  };
  checkHeartbeat(target);
  if (target.confirmTimeout + 1 >= target.releaseTimeout)
    throw new UsageError(context, "confirm_timeout must be more than 1 second shorter than release_timeout (a lost lease must be noticed before the server frees the lock)");
  if (target.confirmTimeout + target.grace >= target.releaseTimeout - 1)
    throw new UsageError(context, "confirm_timeout + grace must stay below release_timeout - 1 (a lost lease's command must be killed before the server can free the lock)");
  return target;
}

/** The URL as it may be shown: no password, no parameters. */
export const describeTarget = (t: PostgresTarget): string => `postgres://${encodeURIComponent(t.user)}@${t.label}/${encodeURIComponent(t.database)}`;
