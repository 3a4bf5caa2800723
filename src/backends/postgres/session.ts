// One PostgreSQL session: one connection of its own (a reserved connection of a pool of
// one, never shared and never reconnected behind our back), with the server-side timers
// that free a vanished holder's locks set at connect.
import { SQL, type ReservedSQL } from "bun";
import { EXIT, WaitlockError } from "../../errors";
import { debug } from "../../log";
import { isConnectionError, pgError } from "./errors";
import { socketOpenedSince, sockets } from "./socketfd";
import { IDENTIFY, userTimeoutForms } from "./sql";
import type { PostgresTarget } from "./url";

/** Linux's limits for TCP_KEEPIDLE and TCP_KEEPCNT: the server fails a session asking for more. */
const MAX_KEEPIDLE = 32767;
const MAX_KEEPCNT = 127;

/**
 * Session settings sent in the startup packet. The server's side of the connection is what
 * decides when a silent host's locks are freed: keepalive probes from tcp_keepalives_idle on,
 * one a second, and tcp_user_timeout ending the connection once nothing was heard for it
 * (also while a reply waits for its acknowledgement, when keepalives pause). A waiter that
 * dies is noticed by client_connection_check_interval while it waits in the lock queue.
 * statement_timeout and idle_session_timeout would end waits and idle holders: off.
 */
export function sessionSettings(t: PostgresTarget): Record<string, string | number> {
  const userTimeoutMs = userTimeout(t);
  return {
    application_name: "waitlock",
    tcp_user_timeout: userTimeoutMs,
    tcp_keepalives_idle: Math.min(MAX_KEEPIDLE, Math.max(1, Math.floor(userTimeoutMs / 2000))),
    tcp_keepalives_interval: 1,
    tcp_keepalives_count: Math.min(MAX_KEEPCNT, Math.max(1, Math.ceil(userTimeoutMs / 1000))),
    client_connection_check_interval: 1000,
    statement_timeout: 0,
    lock_timeout: 0,
    idle_session_timeout: 0,
    idle_in_transaction_session_timeout: 0,
    synchronous_commit: "on",
  };
}

/** The session's tcp_user_timeout, milliseconds: the server frees a silent host's locks after it. */
export const userTimeout = (t: PostgresTarget): number => Math.round((t.releaseTimeout - 1) * 1000);

/** A URL that names only the server (and Bun's TLS keys), so that Bun reads no URL from the environment. */
function serverUrl(t: PostgresTarget): string {
  const host = t.hostname.includes(":") ? `[${t.hostname}]` : t.hostname;
  const query = new URLSearchParams(t.tls).toString();
  return `postgres://${host}:${t.port}/${query ? `?${query}` : ""}`;
}

interface Identity {
  pid: number;
  standby: boolean;
  user_timeout: string;
}

/** How long a stopped statement's query() waits for the server to confirm the cancel. */
const STOP_ANSWER_MS = 1000;

export class Session {
  /** resolves with the reason once the connection has closed, whoever closed it */
  readonly closed: Promise<string>;
  private ended = false;
  private stopped = false;
  /** the statement in flight, and how to stop waiting for it */
  private running: { query: { cancel(): unknown }; abandon(): void } | undefined;

  private constructor(
    private readonly pool: SQL,
    private readonly conn: ReservedSQL,
    /** the server process serving this session (pg_backend_pid()) */
    readonly pid: number,
    /** our descriptor of the connection, when it can be found (Linux) */
    readonly socketFd: number | undefined,
    closed: Promise<string>,
    private readonly target: PostgresTarget,
    /** the rows of the statement open() sent with IDENTIFY */
    readonly opening: unknown[] | undefined,
  ) {
    this.closed = closed.then((reason) => {
      this.ended = true;
      return reason;
    });
  }

  /**
   * Connects within `timeoutMs` milliseconds and checks what the session is: not a
   * standby, and the startup settings arrived (a pooler such as PgBouncer drops them).
   * `alongside`, a statement without parameters, goes in the same round trip (its rows:
   * `opening`); it must itself do nothing on a session that fails the check. When the
   * server refuses it (say, a missing table), IDENTIFY is sent alone and `opening` is
   * undefined.
   * Throws WaitlockError: 75 unreachable or no answer in time, 5 login refused, 4 otherwise.
   */
  static async open(target: PostgresTarget, password: string | undefined, timeoutMs: number, findSocket: boolean, alongside?: string): Promise<Session> {
    let onClosed!: (reason: string) => void;
    const closed = new Promise<string>((resolve) => (onClosed = resolve));
    const wanted = sessionSettings(target);
    const pool = new SQL(serverUrl(target), {
      ...oneConnection(target, password, timeoutMs),
      // Unnamed statements: Parse, Bind and Execute go in one round trip. A named one costs
      // a round trip more the first time, and a session runs most statements once.
      prepare: false,
      idleTimeout: 0,
      maxLifetime: 0,
      connection: wanted,
      onclose: (err) => onClosed(err?.message ?? "connection closed"),
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      pool.close({ timeout: 0 }).catch(() => {});
    }, timeoutMs);
    let conn: ReservedSQL | undefined;
    const before = findSocket ? sockets() : undefined;
    try {
      conn = await pool.reserve();
      const fd = before && socketOpenedSince(before);
      let identified: Identity[] | undefined;
      let opening: unknown[] | undefined;
      if (alongside)
        try {
          [identified, opening] = (await conn.unsafe(`${IDENTIFY};\n${alongside}`).simple()) as [Identity[], unknown[]];
        } catch (e) {
          if (isConnectionError(e)) throw e;
          debug(`postgres ${target.label}: ${(e as Error).message}`);
        }
      identified ??= (await conn.unsafe(IDENTIFY)) as Identity[];
      const id = identified?.[0];
      if (!id) throw new WaitlockError(EXIT.SYSTEM, target.label, "the server did not say who it is");
      if (id.standby)
        throw new WaitlockError(EXIT.SYSTEM, target.label, "this server is a standby: its advisory locks are not shared with the primary (connect to the primary)");
      if (!userTimeoutForms(Number(wanted.tcp_user_timeout)).includes(id.user_timeout))
        throw new WaitlockError(
          EXIT.SYSTEM,
          target.label,
          `the session's tcp_user_timeout is ${id.user_timeout}, not the one waitlock asked for: a connection pooler (PgBouncer?) between waitlock and PostgreSQL would lose locks; connect to the server itself`,
        );
      debug(`postgres ${target.label}: session ${id.pid}${fd === undefined ? "" : ` on descriptor ${fd}`}`);
      return new Session(pool, conn, id.pid, fd, closed, target, opening);
    } catch (e) {
      conn?.close().catch(() => {});
      pool.close({ timeout: 0 }).catch(() => {});
      if (timedOut) throw new WaitlockError(EXIT.TEMPFAIL, target.label, `connecting: no answer within ${(timeoutMs / 1000).toFixed(1)} seconds`);
      if (/unsupported startup parameter/i.test((e as Error)?.message ?? ""))
        throw new WaitlockError(
          EXIT.SYSTEM,
          target.label,
          `connecting: ${(e as Error).message}: a connection pooler (PgBouncer?) sits between waitlock and PostgreSQL; connect to the server itself`,
        );
      throw pgError(e, target.label, "connecting");
    } finally {
      clearTimeout(timer);
    }
  }

  /** Has the connection closed? */
  get isClosed(): boolean {
    return this.ended;
  }

  /**
   * One statement, answered within `timeoutMs` (default: connect_timeout) or the session is
   * closed and 75 thrown; `doing` names the step in messages. Other failures as pgError.
   */
  query<T>(text: string, params: unknown[], doing: string, timeoutMs = this.target.connectTimeout * 1000): Promise<T[]> {
    return this.answered<T[]>(() => this.conn.unsafe(text, params as any[]), doing, timeoutMs);
  }

  /**
   * Several statements without parameters in one Query message (the simple protocol): one
   * round trip, one transaction unless they say otherwise, and the first that fails ends
   * the rest. Returns each statement's rows; bounded and failing as query().
   */
  statements<T>(text: string, doing: string, timeoutMs = this.target.connectTimeout * 1000): Promise<T[][]> {
    return this.answered<T[][]>(() => this.conn.unsafe(text).simple(), doing, timeoutMs);
  }

  /** The answer to the statement `send` sends, as query() says (refused once stopped). */
  private async answered<T>(send: () => PromiseLike<unknown> & { cancel(): unknown }, doing: string, timeoutMs: number): Promise<T> {
    const givenUp = () => new WaitlockError(EXIT.TIMEOUT, this.target.label, `${doing}: given up`);
    if (this.stopped) throw givenUp();
    let timer: Timer | undefined;
    let abandon = () => {};
    const late = new Promise<never>((_, reject) => {
      abandon = () => reject(givenUp());
      if (Number.isFinite(timeoutMs))
        timer = setTimeout(() => {
          this.close();
          reject(new WaitlockError(EXIT.TEMPFAIL, this.target.label, `${doing}: no answer within ${(timeoutMs / 1000).toFixed(1)} seconds`));
        }, timeoutMs);
    });
    const running = send();
    this.running = { query: running, abandon };
    try {
      return (await Promise.race([running, late])) as T;
    } catch (e) {
      // Stopped: the server's answer to the cancel request shows the wait withdrawn; a
      // server that does not answer in time is left to notice the session's end.
      if (this.stopped) await Promise.race([Promise.resolve(running).catch(() => {}), Bun.sleep(STOP_ANSWER_MS)]);
      if (isConnectionError(e)) this.close();
      throw e instanceof WaitlockError ? e : Object.assign(pgError(e, this.target.label, doing), { cause: e });
    } finally {
      clearTimeout(timer);
      this.running = undefined;
    }
  }

  /**
   * Gives up the statement in flight and refuses later ones: Bun asks the server to cancel
   * it (a cancel request on a second connection), so that a lock wait leaves the server's
   * queue now rather than when the session is found dead. Its query() rejects once the
   * server has answered the cancel, or STOP_ANSWER_MS later, whatever the server answers.
   */
  stop(): void {
    this.stopped = true;
    this.running?.query.cancel();
    this.running?.abandon();
  }

  /** statements() for a script that opens a transaction of its own (setup): rolled back when it fails. */
  async script(text: string, doing: string): Promise<void> {
    try {
      await this.statements(text, doing);
    } catch (e) {
      // A script that began a transaction and failed in it would leave the session refusing
      // every later statement (25P02) until the end of that transaction.
      await this.conn
        .unsafe("ROLLBACK")
        .simple()
        .catch(() => {});
      throw e;
    }
  }

  /** Ends the session (the server releases whatever it still holds); never throws. */
  close(): Promise<void> {
    this.ended = true;
    return Promise.all([this.conn.close().catch(() => {}), this.pool.close({ timeout: 0 }).catch(() => {})]).then(() => {});
  }
}

/**
 * Calls `onNotify` for every NOTIFY on `channel`, on a connection of its own (Bun's LISTEN
 * connection, which reconnects by itself: fine for a waiter, which rechecks anyway).
 * Resolves once the server has acknowledged the LISTEN, connecting within `timeoutMs`;
 * close() ends it. Throws WaitlockError as Session.open.
 */
export async function listen(target: PostgresTarget, password: string | undefined, channel: string, onNotify: () => void, timeoutMs: number): Promise<{ close(): void }> {
  const pool = new SQL(serverUrl(target), {
    ...oneConnection(target, password, timeoutMs),
    connection: { application_name: "waitlock", idle_session_timeout: 0 },
  });
  try {
    const subscription = await pool.listen(channel, onNotify);
    return {
      close() {
        subscription.unlisten().catch(() => {});
        pool.close({ timeout: 0 }).catch(() => {});
      },
    };
  } catch (e) {
    pool.close({ timeout: 0 }).catch(() => {});
    throw pgError(e, target.label, "listening for releases");
  }
}

/** Bun.sql options for a pool of one connection to `target`, connecting within `timeoutMs` (milliseconds). */
function oneConnection(target: PostgresTarget, password: string | undefined, timeoutMs: number) {
  return {
    hostname: target.hostname,
    port: target.port,
    username: target.user,
    password,
    database: target.database,
    tls: target.sslmode,
    max: 1,
    connectionTimeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
  };
}
