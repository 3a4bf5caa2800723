// What Bun's Redis client and the server report, as the errors waitlock's users see. Bun
// says only "Connection closed" when the server refuses the login at connect (the reply to
// its HELLO is not passed on), so a failed connect is asked again on a plain socket
// (diagnose): the server's own answer to AUTH or PING says whether it was the login.
// Messages never carry the URL; the server's error replies never repeat a password.
import { connect } from "bun";
import { EXIT, WaitlockError } from "../../errors";
import type { RedisTarget } from "./url";

interface RedisError {
  code?: string;
  message?: string;
}

/** The first word of a server error reply (RESP "-WORD message"): WRONGPASS, NOAUTH, READONLY... */
const replyCode = (message: string): string => /^[A-Z]+/.exec(message)?.[0] ?? "";

/** Did the connection fail (rather than the server refusing a command)? */
export const isConnectionError = (e: unknown): boolean => /^ERR_REDIS_(CONNECTION|SOCKET|TLS|IDLE)/.test((e as RedisError)?.code ?? "");

/** An error reply of the server, as exit status and message. */
function serverError(message: string, label: string, doing: string): WaitlockError {
  const code = replyCode(message);
  if (["WRONGPASS", "NOAUTH", "NOPERM"].includes(code) || /invalid (username-)?password|AUTH .*without any password|user executing the script can't run/i.test(message))
    return new WaitlockError(EXIT.PERMISSION, label, `${doing}: login or command refused: ${message}`);
  if (["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"].includes(code) || /max number of clients/i.test(message))
    return new WaitlockError(EXIT.TEMPFAIL, label, `${doing}: ${message} (try again)`);
  if (code === "READONLY") return new WaitlockError(EXIT.SYSTEM, label, `${doing}: this server is a read-only replica (connect to the primary)`);
  if (["MOVED", "ASK", "CROSSSLOT"].includes(code)) return new WaitlockError(EXIT.SYSTEM, label, `${doing}: ${message} (Redis Cluster is not supported: use one primary)`);
  return new WaitlockError(EXIT.SYSTEM, label, `${doing}: ${message}`);
}

/**
 * Turns a client or server error into a WaitlockError: unreachable or gone 75, login or
 * permission refused 5, anything else 4. `label` is host:port; `doing` says what failed.
 */
export function redisError(e: unknown, label: string, doing: string): WaitlockError {
  if (e instanceof WaitlockError) return e;
  const err = e as RedisError;
  if (err?.code === "ERR_REDIS_SERVER_ERROR") return serverError(err.message ?? "", label, doing);
  if (isConnectionError(e)) return new WaitlockError(EXIT.TEMPFAIL, label, `${doing}: ${err.message ?? "connection failed"}`);
  return new WaitlockError(EXIT.SYSTEM, label, `${doing}: ${err?.message ?? String(e)}`);
}

/** A RESP array of bulk strings (https://redis.io/docs/latest/develop/reference/protocol-spec/). */
const command = (args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;

/**
 * Why connecting to `target` failed, asked on a plain socket within `timeoutMs`: refused or
 * unreachable 75; the login refused 5 (the server's reply to AUTH, or NOAUTH to PING); a
 * TLS failure 4; else 75 with what the server said.
 */
export async function diagnose(target: RedisTarget, timeoutMs: number): Promise<WaitlockError> {
  const doing = "connecting";
  let onLine!: (line: string | Error) => void;
  const answered = new Promise<string | Error>((resolve) => (onLine = resolve));
  let text = "";
  // Over TLS, what is written before the handshake is done is dropped, not queued.
  let onHandshake!: () => void;
  const handshaken = new Promise<void>((resolve) => (onHandshake = resolve));
  const timer = setTimeout(() => onLine(new Error("timeout")), timeoutMs);
  const tls = target.tls ? { ca: target.ca, serverName: target.hostname } : undefined;
  let socket: Awaited<ReturnType<typeof connect>> | undefined;
  let finished = false;
  try {
    const connecting = connect({
      hostname: target.hostname,
      port: target.port,
      tls,
      socket: {
        data(_s, chunk) {
          text += chunk.toString();
          const end = text.indexOf("\r\n");
          if (end >= 0) onLine(text.slice(0, end));
        },
        close() {
          onLine(new Error("closed"));
        },
        error(_s, e) {
          onLine(e);
        },
        connectError(_s, e) {
          onLine(e);
        },
        handshake(_s, success, authorizationError) {
          if (!success || authorizationError) onLine(new Error(authorizationError?.message ?? "handshake failed"));
          else onHandshake();
        },
      },
    });
    connecting.then((s) => (finished ? s.end() : (socket = s))).catch(() => {});
    const opened = await Promise.race([connecting, answered]);
    if (opened instanceof Error && opened.message === "timeout") return new WaitlockError(EXIT.TEMPFAIL, target.label, `${doing}: no answer within ${(timeoutMs / 1000).toFixed(1)} seconds`);
    socket = await connecting;
    if (tls) await Promise.race([handshaken, answered]);
    const hello = target.password === undefined ? ["PING"] : target.user ? ["AUTH", target.user, target.password] : ["AUTH", target.password];
    socket.write(command(hello));
    const line = await answered;
    if (line instanceof Error) {
      if (line.message === "timeout") return new WaitlockError(EXIT.TEMPFAIL, target.label, `${doing}: no answer within ${(timeoutMs / 1000).toFixed(1)} seconds`);
      if (target.tls && line.message !== "closed") return new WaitlockError(EXIT.SYSTEM, target.label, `${doing}: TLS: ${line.message}`);
      if (target.tls) return new WaitlockError(EXIT.TEMPFAIL, target.label, `${doing}: the server closed the connection (is it serving TLS on this port?)`);
      return new WaitlockError(EXIT.TEMPFAIL, target.label, `${doing}: the server closed the connection`);
    }
    if (line.startsWith("-")) return serverError(line.slice(1), target.label, doing);
    return new WaitlockError(EXIT.TEMPFAIL, target.label, `${doing}: the server closed the connection after the login (it answered ${JSON.stringify(line.slice(0, 40))})`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException)?.code ?? "";
    if (target.tls && /CERT|SSL|TLS|SELF_SIGNED|VERIFY/i.test(`${code} ${(e as Error)?.message}`))
      return new WaitlockError(EXIT.SYSTEM, target.label, `${doing}: TLS: ${(e as Error).message}`);
    return new WaitlockError(EXIT.TEMPFAIL, target.label, `${doing}: cannot connect (refused, or the host name does not resolve)`);
  } finally {
    finished = true;
    clearTimeout(timer);
    socket?.end();
  }
}
