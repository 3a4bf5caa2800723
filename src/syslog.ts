// Lock events to syslog through libc, ident "waitlock", with the PID in every line.
import { LOG, openlog, syslog, syslogFacilities } from "../ffi/libc";

let ident: Uint8Array | undefined;

export function openSyslog(facility: string): void {
  // openlog keeps the pointer: the bytes must outlive every later syslog call.
  ident ??= new TextEncoder().encode("waitlock\0");
  const codes = syslogFacilities();
  openlog(ident, LOG.PID | LOG.NDELAY, codes[facility] ?? codes.daemon!);
}

export const logInfo = (message: string) => syslog(LOG.INFO, message);
export const logWarning = (message: string) => syslog(LOG.WARNING, message);
