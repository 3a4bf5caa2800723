// One connection to Redis through Bun's RedisClient, with what the client lacks: a time
// limit on every command, and no reconnect behind our back (autoReconnect off; a lease
// reconnects itself, within its own deadline). Commands are not queued while disconnected.
import { RedisClient } from "bun";
import { EXIT, WaitlockError } from "../../errors";
import { debug } from "../../log";
import { diagnose, isConnectionError, redisError } from "./errors";
import { clientUrl, type RedisTarget } from "./url";

export class Connection {
  private constructor(
    private readonly client: RedisClient,
    private readonly target: RedisTarget,
    /** the server's CLIENT ID of this connection when it opened (0 when CLIENT is not allowed) */
    readonly clientId: number,
  ) {}

  private static client(target: RedisTarget, timeoutMs: number): RedisClient {
    return new RedisClient(clientUrl(target), {
      connectionTimeout: Math.max(1, Math.round(timeoutMs)),
      autoReconnect: false,
      enableOfflineQueue: false,
      tls: target.tls ? (target.ca ? { ca: target.ca, serverName: target.hostname } : true) : false,
    });
  }

  /**
   * Connects within `timeoutMs` milliseconds. Throws WaitlockError: 75 unreachable or no
   * answer in time, 5 login refused, 4 otherwise (TLS).
   */
  static async open(target: RedisTarget, timeoutMs: number): Promise<Connection> {
    const started = performance.now();
    const client = Connection.client(target, timeoutMs);
    try {
      await within(client.connect(), timeoutMs, () => client.close());
    } catch (e) {
      client.close();
      throw await whyNotConnected(e, target, timeoutMs, started);
    }
    const conn = new Connection(client, target, 0);
    const id = await conn.send<number>("CLIENT", ["ID"], "connecting", timeoutMs).catch((e: WaitlockError) => {
      if (e.exitCode === EXIT.PERMISSION) return 0;
      client.close();
      throw e;
    });
    debug(`redis ${target.label}: connected (client ${id})`);
    return new Connection(client, target, id);
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Connects again after the connection closed, within `timeoutMs`; throws as open(). */
  async reconnect(timeoutMs: number): Promise<void> {
    const started = performance.now();
    try {
      await within(this.client.connect(), timeoutMs, () => this.client.close());
    } catch (e) {
      this.client.close();
      throw await whyNotConnected(e, this.target, timeoutMs, started);
    }
  }

  /**
   * One command, answered within `timeoutMs` (default: connect_timeout) or the connection is
   * closed and 75 thrown; `doing` names the step in messages. Other failures as redisError.
   */
  async send<T>(cmd: string, args: string[], doing: string, timeoutMs = this.target.connectTimeout * 1000): Promise<T> {
    try {
      return (await within(this.client.send(cmd, args), timeoutMs, () => this.client.close())) as T;
    } catch (e) {
      if (e === TIMED_OUT) throw new WaitlockError(EXIT.TEMPFAIL, this.target.label, `${doing}: no answer within ${(timeoutMs / 1000).toFixed(1)} seconds`);
      if (isConnectionError(e)) this.client.close();
      throw redisError(e, this.target.label, doing);
    }
  }

  /** EVAL of `script` with `keys` and `args` (the scripts are in scripts.ts), as send(). */
  eval<T>(script: string, keys: string[], args: (string | number)[], doing: string, timeoutMs?: number): Promise<T> {
    return this.send<T>("EVAL", [script, String(keys.length), ...keys, ...args.map(String)], doing, timeoutMs);
  }

  /**
   * Calls `onMessage` for every message on `channel`, on a connection of its own with the
   * same settings (a subscribed connection takes no other commands). Resolves once
   * subscribed; close() ends it.
   */
  async subscribe(channel: string, onMessage: () => void, timeoutMs: number): Promise<{ close(): void }> {
    const sub = Connection.client(this.target, timeoutMs);
    try {
      await within(
        sub.connect().then(() => sub.subscribe(channel, onMessage)),
        timeoutMs,
        () => sub.close(),
      );
    } catch (e) {
      sub.close();
      throw e === TIMED_OUT ? new WaitlockError(EXIT.TEMPFAIL, this.target.label, `subscribing: no answer within ${(timeoutMs / 1000).toFixed(1)} seconds`) : redisError(e, this.target.label, "subscribing");
    }
    return { close: () => sub.close() };
  }

  /** Closes the connection; never throws. */
  close(): void {
    this.client.close();
  }
}

const TIMED_OUT = Symbol("timed out");

/**
 * The error for a connect begun at `started` that failed with `e`: its time was up (ours,
 * or the client's connectionTimeout, which also says only "Connection closed"), else what
 * diagnose() finds in the time left.
 */
async function whyNotConnected(e: unknown, target: RedisTarget, timeoutMs: number, started: number): Promise<WaitlockError> {
  const left = timeoutMs - (performance.now() - started);
  if (e === TIMED_OUT || left < 50) return new WaitlockError(EXIT.TEMPFAIL, target.label, `connecting: no answer within ${(timeoutMs / 1000).toFixed(1)} seconds`);
  return diagnose(target, left);
}

/** `p`, or rejects with TIMED_OUT after `ms` (Infinity: never), calling `onLate` then. */
function within<T>(p: Promise<T>, ms: number, onLate: () => void): Promise<T> {
  if (!Number.isFinite(ms)) return p;
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onLate();
      reject(TIMED_OUT);
    }, Math.max(1, ms));
  });
  p.catch(() => {});
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
