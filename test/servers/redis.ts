// Throwaway Redis servers for the tests: the installed redis-server, in the foreground as
// this test process's own child (not daemonized), without persistence, listening on one
// address only, with a password; stopped by its PID after the test (test/cleanup.ts),
// failed or not. setpriv's pdeathsig ends it too if the test runner itself dies.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { teardowns } from "../cleanup";
import { drainUntil, stopServer } from "./drain";
import { freePort } from "./postgres";

/** The reason Redis tests cannot run here, or undefined. */
export function redisMissing(): string | undefined {
  if (!Bun.which("redis-server") || !Bun.which("redis-cli")) return "redis-server or redis-cli is not installed (apt-get install redis-server)";
  if (!Bun.which("setpriv")) return "setpriv (util-linux) is missing";
  return undefined;
}

export interface RedisServer {
  host: string;
  port: number;
  /** the server's PID while it runs */
  pid: number;
  /** the reply to one command (redis-cli --json over the unix socket, reachable from any network namespace), in database `db` */
  admin(args: string[], db?: number): Promise<any>;
  /** redis://:secret@host:port/db plus `params` (rediss:// for a TLS server) */
  url(params?: Record<string, string>, password?: string, db?: number): string;
  /** with `tls`: the server's certificate (also the CA to verify it with) */
  certificate?: string;
  log(): string;
  /** stops it (SIGTERM; SIGKILL after 10 s), waiting until it has exited */
  stop(): Promise<void>;
  /** starts it again on the same address and port (empty: no persistence) */
  start(): Promise<void>;
}

export interface StartOptions {
  /** address to listen on (default 127.0.0.1) */
  host?: string;
  /** run inside this network namespace (ip netns exec) */
  netns?: string;
  /** serve TLS only, with a fresh self-signed certificate for `host` (openssl) */
  tls?: boolean;
}

export const PASSWORD = "secret";

/** Starts a throwaway server; it is stopped after the current test. */
export async function startRedis(opts: StartOptions = {}): Promise<RedisServer> {
  const missing = redisMissing();
  if (missing) throw new Error(missing);
  const host = opts.host ?? "127.0.0.1";
  const dir = mkdtempSync(join(tmpdir(), "waitlock-redis-"));
  const tlsArgs: string[] = [];
  let certificate: string | undefined;
  if (opts.tls) {
    certificate = join(dir, "server.crt");
    const key = join(dir, "server.key");
    const made = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", `/CN=${host}`, "-addext", `subjectAltName=IP:${host}`, "-keyout", key, "-out", certificate],
      { stderr: "pipe" },
    );
    if (made.exitCode !== 0) throw new Error(`openssl: ${made.stderr}`);
    tlsArgs.push("--tls-cert-file", certificate, "--tls-key-file", key, "--tls-auth-clients", "no");
  }
  let port = opts.netns ? 6379 : await freePort(host);
  const socket = join(dir, "redis.sock");
  let child: ReturnType<typeof Bun.spawn> | undefined;
  let logText = "";

  const launch = async (): Promise<void> => {
    const ports = opts.tls ? ["--port", "0", "--tls-port", String(port)] : ["--port", String(port)];
    const argv = ["setpriv", "--pdeathsig", "SIGKILL", "--", "redis-server", "--bind", host, ...ports, "--unixsocket", socket, "--dir", dir, "--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--daemonize", "no", "--logfile", "", ...tlsArgs];
    const p = Bun.spawn(opts.netns ? ["ip", "netns", "exec", opts.netns, ...argv] : argv, { stdout: "pipe", stderr: "pipe" });
    child = p;
    const from = logText.length;
    drainUntil(p.stderr as ReadableStream<Uint8Array>, (text) => (logText += text), () => false);
    const ready = drainUntil(p.stdout as ReadableStream<Uint8Array>, (text) => (logText += text), () => /Ready to accept connections/.test(logText.slice(from)));
    const outcome = await Promise.race([ready, Bun.sleep(10_000).then(() => "timeout" as const)]);
    if (outcome === true) return;
    p.kill("SIGKILL");
    await p.exited;
    throw new Error(`redis-server did not start (${outcome === "timeout" ? "not ready within 10 s" : `exit ${p.exitCode}`}):\n${logText}`);
  };

  for (let attempt = 0; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      if (attempt < 3 && !opts.netns && /Address already in use/.test(logText)) {
        logText = "";
        port = await freePort(host);
        continue;
      }
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  const server: RedisServer = {
    host,
    get port() {
      return port;
    },
    get pid() {
      return child!.pid;
    },
    certificate,
    async admin(args, db = 0) {
      const p = Bun.spawn(["redis-cli", "-s", socket, "-n", String(db), "--no-auth-warning", "-a", PASSWORD, "--json", ...args], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      if (code !== 0 || out.startsWith("(error)")) throw new Error(`redis-cli ${args.join(" ")}: ${out}${err}`);
      return JSON.parse(out);
    },
    url(params = {}, password = PASSWORD, db = 0) {
      const q = new URLSearchParams(params).toString();
      return `${opts.tls ? "rediss" : "redis"}://:${encodeURIComponent(password)}@${host}:${port}/${db}${q ? `?${q}` : ""}`;
    },
    log: () => logText,
    async stop() {
      await stopServer(child, "SIGTERM");
    },
    async start() {
      await launch();
    },
  };
  teardowns.push(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return server;
}
