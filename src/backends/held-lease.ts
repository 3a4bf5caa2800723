// What every network engine's lease shares: the promises a mode watches (lost, requested),
// the held → lost | released states, and the two timers (the heartbeat, and the watchdog
// that declares the lease lost when no check was confirmed in time).
import type { DoneRequest } from "../backend";
import { LockLostError } from "../errors";
import { debug } from "../log";

export abstract class HeldLease {
  /** resolves (never rejects) with the error to exit with (7) once the lock is lost */
  readonly lost: Promise<LockLostError>;
  /** resolves when `waitlock --done` asks this holder to stop (or only to release) */
  readonly requested: Promise<DoneRequest>;
  protected declareLost!: (e: LockLostError) => void;
  protected declareRequest!: (r: DoneRequest) => void;
  protected state: "held" | "lost" | "released" = "held";
  protected beatTimer: Timer | undefined;
  protected watchdog: Timer | undefined;

  /** `slot` 0-based of `slots`; `token` the fencing token; `engine`: how debug lines name the lease's server ("postgres HOST:PORT"). */
  constructor(
    readonly name: string,
    readonly slot: number,
    readonly slots: number,
    readonly shared: boolean,
    readonly token: string,
    private readonly engine: string,
  ) {
    this.lost = new Promise((resolve) => (this.declareLost = resolve));
    this.requested = new Promise((resolve) => (this.declareRequest = resolve));
  }

  /** Ends the connection the lease lives on: a lost lease checks nothing more. */
  protected abstract closeConnection(): void;

  /** Declares the lease lost, once, saying why (LockLostError, exit 7). */
  protected lose(reason: string): void {
    if (this.state !== "held") return;
    this.state = "lost";
    this.stopTimers();
    debug(`${this.engine}: lock '${this.name}' slot ${this.slot} lost: ${reason}`);
    this.closeConnection();
    this.declareLost(new LockLostError(this.name, `lock lost: ${reason}`));
  }

  /** Ends the lease as held, once: returns the state it was in, undefined when it was released already. */
  protected releasing(): "held" | "lost" | undefined {
    if (this.state === "released") return undefined;
    const was = this.state;
    this.state = "released";
    this.stopTimers();
    return was;
  }

  /**
   * The release found the lock no longer ours (`why`): the work done meanwhile was not
   * protected, and the caller must hear of it (exit 7), not of success.
   */
  protected lostAtRelease(why: string): void {
    this.declareLost(new LockLostError(this.name, `lock lost: when released, ${why}`));
  }

  protected stopTimers(): void {
    clearTimeout(this.beatTimer);
    clearTimeout(this.watchdog);
  }
}
