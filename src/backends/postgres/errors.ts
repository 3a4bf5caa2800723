// What Bun's PostgreSQL client and the server report, as the errors waitlock's users see.
// Bun's own codes (ERR_POSTGRES_*) say what happened to the connection; the server's
// SQLSTATE (errno) what happened to the statement. Messages never carry the URL.
import { EXIT, WaitlockError } from "../../errors";

interface PgError {
  code?: string;
  /** the server's SQLSTATE; a number on TLS failures (an OS or TLS library code) */
  errno?: string | number;
  message?: string;
}

const sqlState = (e: unknown): string => {
  const errno = (e as PgError)?.errno;
  return typeof errno === "string" ? errno : "";
};

/** Connection-level failures: nothing answered, or the session went away. */
export const isConnectionError = (e: unknown): boolean => {
  const code = (e as PgError)?.code ?? "";
  const state = sqlState(e);
  return (
    /^ERR_POSTGRES_(CONNECTION_(CLOSED|REFUSED|FAILED|TIMEOUT)|SOCKET|IDLE_TIMEOUT|LIFETIME_TIMEOUT)/.test(code) ||
    state.startsWith("08") ||
    ["57P01", "57P02", "57P03"].includes(state)
  );
};

/** The server withdrew a lock request at its lock_timeout. */
export const isLockTimeout = (e: unknown): boolean => sqlState(e) === "55P03";

/** The role may not do what the statement asked (insufficient_privilege). */
export const isPrivilegeError = (e: unknown): boolean => sqlState(e) === "42501";

/** The description table (or its schema) does not exist yet. */
export const isMissingTable = (e: unknown): boolean => ["42P01", "3F000"].includes(sqlState(e));

/**
 * Turns a client or server error into a WaitlockError: unreachable or gone 75, login or
 * privilege refused 5, anything else 4. `label` is host:port; `doing` says what failed.
 */
export function pgError(e: unknown, label: string, doing: string): WaitlockError {
  if (e instanceof WaitlockError) return e;
  const err = e as PgError;
  const state = sqlState(e);
  const code = err?.code ?? "";
  const what = `${doing}: ${err?.message ?? String(e)}${state ? ` (SQLSTATE ${state})` : ""}`;
  if (state.startsWith("28")) return new WaitlockError(EXIT.PERMISSION, label, `${doing}: login refused: ${err.message}`);
  if (state === "42501") return new WaitlockError(EXIT.PERMISSION, label, what);
  if (state === "53300") return new WaitlockError(EXIT.TEMPFAIL, label, `${what} (try again)`);
  if (code === "ERR_POSTGRES_CONNECTION_REFUSED")
    return new WaitlockError(EXIT.TEMPFAIL, label, `${doing}: cannot connect (refused, or the host name does not resolve)`);
  if (isConnectionError(e)) return new WaitlockError(EXIT.TEMPFAIL, label, what);
  return new WaitlockError(EXIT.SYSTEM, label, what);
}
