import { E, errnoName, strerror } from "../ffi/libc";
import { EXIT, WaitlockError } from "./errors";

/** Out of a per-process or system-wide resource: trying again later can succeed. */
const TEMPORARY = ["EMFILE", "ENFILE", "ENOLCK", "EAGAIN", "EINTR"] as const;

/**
 * The exit status for a failed system call's errno (positive):
 * - EACCES, EPERM: 5 (permission denied);
 * - EROFS: 6 (the lock directory is on a read-only file system: unusable for locks);
 * - EMFILE, ENFILE, ENOLCK, EAGAIN, EINTR: 75 (temporary failure, try again);
 * - anything else: 4 (system error).
 */
function exitCodeFor(n: number): number {
  if (n === E.EACCES || n === E.EPERM) return EXIT.PERMISSION;
  if (n === E.EROFS) return EXIT.LOCKDIR;
  for (const name of TEMPORARY) if (n === E[name]) return EXIT.TEMPFAIL;
  return EXIT.SYSTEM;
}

const retry = (code: number) => (code === EXIT.TEMPFAIL ? " (try again)" : "");

/**
 * Turns a failed system call on `context` (a file, a name) into the error a user should see:
 * the exit status of `exitCodeFor`, the call's own reason (strerror) in the message.
 * `errno` may be negative, as ffi/libc returns it.
 */
export function sysError(context: string, errno: number, doing?: string): WaitlockError {
  const n = Math.abs(errno);
  const code = exitCodeFor(n);
  const what = doing ? `${doing}: ${strerror(n)}` : strerror(n);
  return new WaitlockError(code, context, `${what}${retry(code)}${errnoName(n) ? "" : ` (errno ${n})`}`);
}

/**
 * A failure reported by the runtime (Bun.spawn, node:fs) rather than by ffi/libc, as a
 * WaitlockError: its `code` ("EMFILE", ...) mapped as sysError maps errno values, its own
 * message kept (after `doing`). null when it carries no error code waitlock knows.
 */
export function runtimeError(context: string, e: unknown, doing?: string): WaitlockError | null {
  const name = (e as { code?: unknown } | null)?.code;
  if (typeof name !== "string" || !Object.hasOwn(E, name)) return null;
  const code = exitCodeFor(E[name as keyof typeof E]);
  const message = (e as Error).message;
  return new WaitlockError(code, context, `${doing ? `${doing}: ${message}` : message}${retry(code)}`);
}
