// Which engine a --backend URL names. Loaded only when a URL is given: the lock directory's
// runs never evaluate a network client, and a run evaluates only the engine it uses.
import type { Backend } from "../backend";
import { UsageError } from "../errors";

/**
 * The backend for `url` (postgres://, postgresql://, redis:// or rediss://). Connects
 * lazily. Throws UsageError (exit 3) for a malformed URL or an unknown scheme, never
 * repeating the URL (it may hold a password).
 */
export async function connectBackend(url: string, env: Record<string, string | undefined> = process.env): Promise<Backend> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === "postgres" || scheme === "postgresql") return (await import("./postgres")).connectPostgres(url, env);
  if (scheme === "redis" || scheme === "rediss") return (await import("./redis")).connectRedis(url, env);
  const named = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  const known = ["postgres", "postgresql", "redis", "rediss"];
  if (named && known.includes(named)) throw new UsageError("--backend", `not a valid URL: ${named}://HOST[:PORT]/... expected`);
  throw new UsageError("--backend", `${named ? `unsupported scheme '${named}'` : "not a URL"} (known: ${known.map((k) => `${k}://`).join(", ")})`);
}
