// Which engine a --backend URL names. Loaded only when a URL is given: the lock directory's
// runs never evaluate a network client.
import type { Backend } from "../backend";
import { UsageError } from "../errors";
import { connectPostgres, isPostgresUrl } from "./postgres";
import { connectRedis, isRedisUrl } from "./redis";

/**
 * The backend for `url` (postgres://, postgresql://, redis:// or rediss://). Connects
 * lazily. Throws UsageError (exit 3) for a malformed URL or an unknown scheme, never
 * repeating the URL (it may hold a password).
 */
export function connectBackend(url: string, env: Record<string, string | undefined> = process.env): Backend {
  if (isPostgresUrl(url)) return connectPostgres(url, env);
  if (isRedisUrl(url)) return connectRedis(url, env);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw new UsageError("--backend", `${scheme ? `unsupported scheme '${scheme}'` : "not a URL"} (known: postgres://, postgresql://, redis://, rediss://)`);
}
