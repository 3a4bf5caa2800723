// A held slot (or a shared hold of slot 0): a key with a time to live (ttl), extended every `heartbeat` seconds by
// compare-and-extend. Lost when an extension finds the key no longer ours, or when none has
// been confirmed within `confirm_timeout` of being sent: a deadline of our own, since
// Bun's client has no per-command timeout, and shorter than the ttl, so that the holder
// stops before the server can let the key expire and give the slot to another host. The
// server refuses an extension that arrives after that window (scripts.ts EXTEND), so a
// lease this process gave up is never renewed behind its back.
import type { Lease } from "../../backend";
import { HeldLease } from "../held-lease";
import { EXIT, WaitlockError } from "../../errors";
import { debug } from "../../log";
import { Connection } from "./connection";
import { base, EXTEND, RELEASE, sharedKey, slotKey } from "./scripts";
import type { RedisTarget } from "./url";

/** How long a release may take (connecting again included) before the ttl is left to free the key. */
const RELEASE_MS = 1000;

export class RedisLease extends HeldLease implements Lease {
  /** the lease lives in a key, not in the connection: nothing for a command to inherit */
  readonly socketFd = undefined;
  private confirmedAt: number;
  private extending = false;
  private readonly key: string;

  /** `confirmedAt`: performance.now() when the command that took the slot was sent. */
  constructor(
    private readonly conn: Connection,
    private readonly target: RedisTarget,
    /** the random id that marks the slot's key as ours */
    private readonly id: string,
    name: string,
    slot: number,
    slots: number,
    shared: boolean,
    token: string,
    confirmedAt: number,
  ) {
    super(name, slot, slots, shared, token, `redis ${target.label}`);
    this.key = shared ? sharedKey(name, id) : slotKey(name, slot);
    this.confirmedAt = confirmedAt;
    this.arm();
    this.beatTimer = setTimeout(this.beat, target.heartbeat * 1000);
  }

  private readonly beat = (): void => {
    if (this.state !== "held") return;
    if (!this.extending) {
      this.extending = true;
      this.extend().finally(() => (this.extending = false));
    }
    this.beatTimer = setTimeout(this.beat, this.target.heartbeat * 1000);
  };

  private async extend(): Promise<void> {
    const left = () => this.confirmedAt + this.target.confirmTimeout * 1000 - performance.now();
    try {
      // A reconnect that finds the key still ours and extends it keeps the lease (SPEC).
      if (!this.conn.connected) {
        debug(`redis ${this.target.label}: '${this.name}': the connection closed; connecting again`);
        await this.conn.reconnect(left());
      }
      const sentAt = performance.now();
      const args = [this.id, Math.round(this.target.ttl * 1000), Math.round(this.target.confirmTimeout * 1000)];
      const [ours, request] = await this.conn.eval<[number, string]>(EXTEND, [this.key, base(this.name)], args, "extending the lease", Math.max(1, left()));
      if (this.state !== "held") return;
      if (ours === 2) return this.lose(`not confirmed by the server within ${this.target.confirmTimeout} seconds (an extension ran late on the server and was refused)`);
      if (ours !== 1) return this.lose("the server no longer holds it for us (it expired or was taken)");
      this.confirm(sentAt);
      if (request === "stop" || request === "release") this.declareRequest(request);
    } catch (e) {
      // An error reply that is not "try again" (a refused command, a script error) proves the
      // server alive and the lease not extendable: lost now, saying why. For the rest (no
      // answer, the connection gone) the watchdog decides: a later extension may work.
      if (e instanceof WaitlockError && e.exitCode !== EXIT.TEMPFAIL) return this.lose(`the server refused to extend it: ${e.message}`);
      debug(`redis ${this.target.label}: extending '${this.name}': ${(e as Error).message}`);
    }
  }

  private confirm(sentAt: number): void {
    if (sentAt <= this.confirmedAt) return;
    this.confirmedAt = sentAt;
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(this.expire, Math.max(0, this.confirmedAt + this.target.confirmTimeout * 1000 - performance.now()));
  }

  // Unlike a PostgreSQL session, the key runs out on the server while this process is
  // stopped: a watchdog that fires late is a loss all the same.
  private readonly expire = (): void => this.lose(`not confirmed by the server within ${this.target.confirmTimeout} seconds`);

  protected closeConnection(): void {
    this.conn.close();
  }

  /**
   * Compare-and-delete, within RELEASE_MS, also after a loss: the caller has ended the
   * command by then, and a key still ours (an extension refused as late leaves it) is freed
   * now rather than at its ttl. A server that does not answer in time is left to let the
   * key expire. A held lease whose key proves no longer ours resolves `lost` first.
   */
  async release(): Promise<void> {
    const was = this.releasing();
    if (was === undefined) return;
    const deadline = performance.now() + RELEASE_MS;
    let conn = this.conn;
    try {
      // A connection of its own when the lease's has closed: an extension still reconnecting
      // the lease's (after a pause, say) must not race the release for it.
      if (!conn.connected) conn = await Connection.open(this.target, RELEASE_MS);
      const released = await conn.eval<number>(RELEASE, [this.key, base(this.name)], [this.id], "releasing", Math.max(1, deadline - performance.now()));
      // Lost since the last extension: deleted, expired, taken.
      if (was === "held" && released !== 1) this.lostAtRelease("the server no longer held it for us (it expired or was taken)");
    } catch (e) {
      debug(`redis ${this.target.label}: releasing '${this.name}': ${(e as Error).message}; the lease runs out within ${this.target.ttl} seconds instead`);
    }
    if (conn !== this.conn) conn.close();
    this.conn.close();
  }
}
