// A held slot: its session checked every `heartbeat` seconds; lost when the session ends,
// changes, or a check is not answered within `confirm_timeout` of being sent.
import type { DoneRequest, Lease } from "../../backend";
import { HeldLease } from "../held-lease";
import { debug } from "../../log";
import { isConnectionError } from "./errors";
import type { Session } from "./session";
import { HEARTBEAT, release } from "./sql";
import type { PostgresTarget } from "./url";

/** How long a release waits for the server's answer before it closes the session instead. */
const RELEASE_MS = 1000;

/** A watchdog that fires this much later than asked was paused with its process, not starved by the network. */
const PAUSED_MS = 250;

interface Beat {
  pid: number;
  request: DoneRequest | null;
}

export class PostgresLease extends HeldLease implements Lease {
  readonly socketFd: number | undefined;
  private watchdogDue = 0;
  private confirmedAt: number;
  private checking = false;

  /** `confirmedAt`: performance.now() when the last statement that the server answered was sent. */
  constructor(
    private readonly session: Session,
    private readonly target: PostgresTarget,
    name: string,
    slot: number,
    slots: number,
    shared: boolean,
    token: string,
    confirmedAt: number,
  ) {
    super(name, slot, slots, shared, token, `postgres ${target.label}`);
    this.socketFd = session.socketFd;
    this.confirmedAt = confirmedAt;
    session.closed.then((reason) => this.lose(`the session ended (${reason})`));
    this.arm(confirmedAt + target.confirmTimeout * 1000 - performance.now());
    this.beatTimer = setTimeout(this.beat, target.heartbeat * 1000);
    // Written after the caller's next step (an --exec command is started synchronously
    // once the lease is returned), not between the grant and it.
    setTimeout(() => void this.releaseText, 0);
  }

  private releaseStatements: string | undefined;

  private get releaseText(): string {
    this.releaseStatements ??= release(this.shared, this.name, this.slot);
    return this.releaseStatements;
  }

  private readonly beat = (): void => {
    if (this.state !== "held") return;
    if (!this.checking) {
      this.checking = true;
      const sentAt = performance.now();
      this.session.query<Beat>(HEARTBEAT, [], "checking the lock", Infinity).then(
        ([row]) => {
          this.checking = false;
          if (row?.pid !== this.session.pid) return this.lose(`the session changed under waitlock (backend ${row?.pid}, not ${this.session.pid}): a connection pooler?`);
          this.confirm(sentAt);
          if (row.request) this.declareRequest(row.request);
        },
        (e: Error) => {
          this.checking = false;
          // An error the server sent proves the session alive (say, the description table
          // was dropped): only a connection that failed loses the lock.
          if (!isConnectionError((e as { cause?: unknown }).cause ?? e)) {
            debug(`postgres ${this.target.label}: checking '${this.name}': ${e.message}`);
            return this.confirm(sentAt);
          }
          this.lose(`checking it failed: ${e.message}`);
        },
      );
    }
    this.beatTimer = setTimeout(this.beat, this.target.heartbeat * 1000);
  };

  private confirm(sentAt: number): void {
    if (this.state !== "held" || sentAt <= this.confirmedAt) return;
    this.confirmedAt = sentAt;
    this.arm(sentAt + this.target.confirmTimeout * 1000 - performance.now());
  }

  private arm(ms: number): void {
    clearTimeout(this.watchdog);
    this.watchdogDue = performance.now() + ms;
    this.watchdog = setTimeout(this.expire, Math.max(0, ms));
  }

  private readonly expire = (): void => {
    const late = performance.now() - this.watchdogDue;
    // A process that was stopped (SIGSTOP, a suspended VM) kept its session: its host kept
    // answering the server. Give the check that is due a fresh window instead of a loss.
    if (late > PAUSED_MS) {
      debug(`postgres ${this.target.label}: '${this.name}': resumed after ${(late / 1000).toFixed(1)} s, checking again`);
      this.arm(this.target.confirmTimeout * 1000);
      return;
    }
    this.lose(`no answer from the server within ${this.target.confirmTimeout} seconds`);
  };

  protected closeConnection(): void {
    this.session.close();
  }

  async release(): Promise<void> {
    const was = this.releasing();
    if (was === undefined) return;
    if (was === "held")
      try {
        // A server that does not answer at once is left to free the lock as the session
        // closes: the holder's command has ended, its waitlock should not linger.
        const [unlocked] = await this.session.statements<{ released: boolean }>(this.releaseText, "releasing", RELEASE_MS);
        if (unlocked?.[0]?.released === false) this.lostAtRelease("the session no longer held it");
      } catch (e) {
        debug(`postgres ${this.target.label}: releasing '${this.name}': ${(e as Error).message}; closing the session instead`);
      }
    await this.session.close();
  }
}
