// Every failure is one of these; only the CLI turns them into a message and an exit status.

export const EXIT = {
  OK: 0,
  BUSY: 1,
  TIMEOUT: 2,
  USAGE: 3,
  SYSTEM: 4,
  PERMISSION: 5,
  LOCKDIR: 6,
  /** a network backend's session ended (or could not be confirmed) while the lock was held */
  LOST: 7,
  TEMPFAIL: 75,
  CANNOT_EXECUTE: 126,
  NOT_FOUND: 127,
} as const;

export class WaitlockError extends Error {
  constructor(
    readonly exitCode: number,
    /** what the message is about: a file, a name, an option */
    readonly context: string,
    message: string,
  ) {
    super(message);
  }
}

export class UsageError extends WaitlockError {
  constructor(context: string, message: string) {
    super(EXIT.USAGE, context, message);
  }
}

export class BusyError extends WaitlockError {
  constructor(name: string) {
    super(EXIT.BUSY, name, "lock is busy");
  }
}

export class TimeoutError extends WaitlockError {
  constructor(name: string, seconds: number) {
    super(EXIT.TIMEOUT, name, `timed out after ${seconds} seconds`);
  }
}

/** A network lease ended while held: its session closed or could not be confirmed in time (exit 7). */
export class LockLostError extends WaitlockError {
  constructor(name: string, message: string) {
    super(EXIT.LOST, name, message);
  }
}
