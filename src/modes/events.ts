// The lock events a user can follow in syslog (--syslog). Off by default: then nothing here
// touches libc's syslog at all.
import { logInfo, logWarning, openSyslog } from "../syslog";

export interface Events {
  waiting(holderPid: number | undefined): void;
  acquired(slot: number, command: string): void;
  released(seconds: number): void;
  timedOut(seconds: number): void;
  /** the facility for a holder process to log its release with ("" = off) */
  holderArgs(): string;
}

export const noEvents: Events = {
  waiting() {},
  acquired() {},
  released() {},
  timedOut() {},
  holderArgs: () => "",
};

export function syslogEvents(facility: string, name: string, slots: number): Events {
  openSyslog(facility);
  return {
    waiting: (pid) => logWarning(`lock '${name}' held by PID ${pid ?? "unknown"}, waiting`),
    acquired: (slot, command) => logInfo(`acquired lock '${name}' slot ${slot}/${slots} for '${command}'`),
    released: (seconds) => logInfo(`released lock '${name}' after ${seconds.toFixed(2)} seconds`),
    timedOut: (seconds) => logWarning(`timeout waiting for lock '${name}' after ${seconds} seconds`),
    holderArgs: () => facility,
  };
}
