// The lock events a user can follow in syslog (--syslog). Off by default: then nothing here
// touches libc's syslog at all.
import { EXIT, WaitlockError, secondsPhrase } from "./errors";
import { logInfo, logWarning, openSyslog } from "./syslog";

export interface Events {
  waiting(holderPid: number | undefined): void;
  acquired(slot: number, command: string): void;
  released(seconds: number): void;
  timedOut(seconds: number): void;
  /** the facility for a holder process to log its release with ("" = off) */
  holderArgs(): string;
  /** A slot is ours (taken, or already held for us): before any command starts. */
  taken?(slot: number): void;
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
    timedOut: (seconds) => logWarning(`timeout waiting for lock '${name}' after ${secondsPhrase(seconds)}`),
    holderArgs: () => facility,
  };
}

/** `events`, and the slot taken printed on stdout (--print-slot). Throws WaitlockError (exit 4) when stdout cannot be written. */
export function printingSlot(events: Events): Events {
  return {
    ...events,
    taken(slot) {
      const { writeSync } = require("node:fs") as typeof import("node:fs");
      try {
        writeSync(1, `${slot}\n`);
      } catch (e) {
        throw new WaitlockError(EXIT.SYSTEM, "--print-slot", `cannot write to stdout: ${(e as Error).message}`);
      }
    },
  };
}
