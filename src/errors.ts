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

/** An option the table does not know (the CLI looks for the nearest one it does know). */
export class UnknownOptionError extends UsageError {
  constructor(flag: string) {
    super(flag, "unknown option (see --help)");
  }
}

export class BusyError extends WaitlockError {
  /** `holders`: who holds it, as src/holdertext.ts heldBy() says it ("" when unknown) */
  constructor(name: string, holders = "") {
    super(EXIT.BUSY, name, `lock is busy${holders ? `; ${holders}` : ""}`);
  }
}

/** `1 second`, `0.5 seconds`, `2 seconds`: a count of seconds as a person writes it. */
export const secondsPhrase = (seconds: number) => `${seconds} second${seconds === 1 ? "" : "s"}`;

export class TimeoutError extends WaitlockError {
  /** `seconds`: the timeout given; `holders` as for BusyError */
  constructor(name: string, seconds: number, holders = "") {
    super(EXIT.TIMEOUT, name, `timed out after ${secondsPhrase(seconds)}${holders ? `; ${holders}` : ""}`);
  }
}

/**
 * The exit status for failure `e` whose own status is `status`, under `-E N`
 * (`conflictExitCode`): as flock(1) -E, N replaces the status of a lock conflict (busy, timed
 * out), never that of another failure.
 */
export function conflictStatus(e: unknown, status: number, conflictExitCode: number | undefined): number {
  return conflictExitCode !== undefined && (e instanceof BusyError || e instanceof TimeoutError) ? conflictExitCode : status;
}

/**
 * The exit status for failure `e`, whose own status is `status`, in a mode whose exit status
 * is its answer (--check: 1 is "held"; --list: 0 is "listed"): such a mode fails with a
 * status of its own, `failed` (--check: 2, "cannot tell"; --list: 1), so that no failure
 * reads as an answer. A usage error keeps 3, and running out of descriptors 75 in every
 * mode: retrying can succeed, and it is no answer.
 */
export function unansweredStatus(e: unknown, status: number, failed: number): number {
  return e instanceof WaitlockError && status !== EXIT.USAGE && status !== EXIT.TEMPFAIL ? failed : status;
}

/** A wait given up before its deadline: the caller stopped it (an AbortSignal, a closed client). */
export class CancelledError extends WaitlockError {
  constructor(name: string) {
    super(EXIT.TIMEOUT, name, "gave up waiting: cancelled");
  }
}

/** A lock this process already holds every slot of that it could take: waiting would wait for itself. */
export class AlreadyHeldError extends WaitlockError {
  constructor(name: string, slots: number[]) {
    super(EXIT.BUSY, name, `already held by this process (slot${slots.length === 1 ? "" : "s"} ${slots.join(", ")}); waiting would never end`);
  }
}

/** A network lease ended while held: its session closed or could not be confirmed in time (exit 7). */
export class LockLostError extends WaitlockError {
  constructor(name: string, message: string) {
    super(EXIT.LOST, name, message);
  }
}
