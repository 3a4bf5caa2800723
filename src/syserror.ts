import { E, errnoName, strerror } from "../ffi/libc";
import { EXIT, WaitlockError } from "./errors";

/** Turns a failed system call on `context` into the error a user should see. */
export function sysError(context: string, errno: number, doing?: string): WaitlockError {
  const n = Math.abs(errno);
  const what = doing ? `${doing}: ${strerror(n)}` : strerror(n);
  if (n === E.EACCES || n === E.EPERM) return new WaitlockError(EXIT.PERMISSION, context, what);
  if (n === E.EMFILE || n === E.ENFILE || n === E.ENOLCK || n === E.EAGAIN || n === E.EINTR)
    return new WaitlockError(EXIT.TEMPFAIL, context, `${what} (try again)`);
  return new WaitlockError(EXIT.SYSTEM, context, `${what}${errnoName(n) ? "" : ` (errno ${n})`}`);
}
