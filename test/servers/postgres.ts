// Throwaway PostgreSQL servers for the tests: a cluster in a temporary directory made with
// the installed server binaries, run as an unprivileged user (postgres refuses root),
// listening on one address only, as this test process's own child (not daemonized), and
// stopped by its PID after the test (test/cleanup.ts), failed or not. setpriv's pdeathsig
// ends it too if the test runner itself dies.
import { SQL } from "bun";
import { appendFileSync, chownSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { atTheEnd, teardowns } from "../cleanup";
import { drainUntil, stopServer } from "./drain";

export interface Found {
  bin: string;
  /** the account the server runs as when we are root */
  user?: { name: string; uid: number; gid: number };
}

function account(name: string): Found["user"] {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

let found: Found | string | undefined;

/** Where the server binaries are, or why the tests cannot start a server. */
export function findPostgres(): Found | string {
  if (found) return found;
  const candidates: string[] = [];
  if (existsSync("/usr/lib/postgresql"))
    for (const v of readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a))) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  const onPath = Bun.which("postgres");
  if (onPath) candidates.push(dirname(onPath));
  const bin = candidates.find((d) => existsSync(join(d, "postgres")) && existsSync(join(d, "initdb")));
  if (!bin) return (found = "no PostgreSQL server binaries (postgres, initdb) in /usr/lib/postgresql/*/bin or on PATH (apt-get install postgresql)");
  if (!Bun.which("setpriv")) return (found = "setpriv (util-linux) is missing");
  if (process.getuid?.() !== 0) return (found = { bin });
  const user = account("postgres") ?? account("nobody");
  if (!user) return (found = "running as root, and there is neither a 'postgres' nor a 'nobody' account to run the server as");
  return (found = { bin, user });
}

/** The reason PostgreSQL tests cannot run here, or undefined. */
export const postgresMissing = (): string | undefined => {
  const f = findPostgres();
  return typeof f === "string" ? f : undefined;
};

/** argv that runs `argv` as the servers' account, ended with `signal` if this process dies. */
export function asServerUser(f: Found, argv: string[], signal = "SIGQUIT"): string[] {
  const drop = f.user ? [`--reuid=${f.user.uid}`, `--regid=${f.user.gid}`, "--clear-groups"] : [];
  return ["setpriv", ...drop, "--pdeathsig", signal, "--", ...argv];
}

let template: Promise<string> | undefined;

/** One initdb per test process; each server starts from a copy of it. */
function clusterTemplate(f: Found): Promise<string> {
  template ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "waitlock-pg-template-"));
    if (f.user) chownSync(dir, f.user.uid, f.user.gid);
    const p = Bun.spawn(
      asServerUser(f, [join(f.bin, "initdb"), "-D", join(dir, "data"), "--no-sync", "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"]),
      { stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`initdb failed (${code}): ${out}${err}`);
    // Logins from the simulated hosts (test/hosts.ts) come from 127.1.0.0/16.
    appendFileSync(join(dir, "data", "pg_hba.conf"), "host all all 127.0.0.0/8 scram-sha-256\n");
    atTheEnd.push(() => rmSync(dir, { recursive: true, force: true }));
    return join(dir, "data");
  })();
  return template;
}

export async function freePort(host: string): Promise<number> {
  const s = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

export interface PostgresServer {
  /** the address it listens on */
  host: string;
  port: number;
  /** the postmaster's PID while it runs */
  pid: number;
  /** the directory of the cluster and its unix socket */
  dir: string;
  /** superuser sessions in database waitlock over the unix socket (reachable from any network namespace) */
  admin: SQL;
  /** postgres://waitlock:secret@host:port/waitlock plus `params` (a role made for the tests, owner of that database) */
  url(params?: Record<string, string>, user?: string, password?: string): string;
  /** with `tls`: the server's certificate (also the CA to verify it with) */
  certificate?: string;
  /** the server's log so far */
  log(): string;
  /** fast shutdown (or, `crash`, an immediate one: crash recovery at the next start), waiting until it has exited */
  stop(crash?: boolean): Promise<void>;
  /** starts it again on the same address and port */
  start(): Promise<void>;
}

export interface StartOptions {
  /** address to listen on (default 127.0.0.1) */
  host?: string;
  /** port (default: a free one) */
  port?: number;
  /** run inside this network namespace (ip netns exec) */
  netns?: string;
  /** extra -c settings */
  settings?: Record<string, string>;
  /** serve TLS with a fresh self-signed certificate for `host` (openssl); its path is `server.certificate` */
  tls?: boolean;
}

/** Starts a throwaway server; it is stopped after the current test. */
export async function startPostgres(opts: StartOptions = {}): Promise<PostgresServer> {
  const f = findPostgres();
  if (typeof f === "string") throw new Error(f);
  const host = opts.host ?? "127.0.0.1";
  const dir = mkdtempSync(join(tmpdir(), "waitlock-pg-"));
  cpSync(await clusterTemplate(f), join(dir, "data"), { recursive: true });
  const tls: Record<string, string> = {};
  if (opts.tls) {
    const certificate = join(dir, "server.crt");
    const key = join(dir, "server.key");
    const made = Bun.spawnSync(
      ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", `/CN=${host}`, "-addext", `subjectAltName=IP:${host}`, "-keyout", key, "-out", certificate],
      { stderr: "pipe" },
    );
    if (made.exitCode !== 0) throw new Error(`openssl: ${made.stderr}`);
    Object.assign(tls, { ssl: "on", ssl_cert_file: certificate, ssl_key_file: key });
  }
  if (f.user) {
    const chown = Bun.spawnSync(["chown", "-R", `${f.user.uid}:${f.user.gid}`, dir]);
    if (chown.exitCode !== 0) throw new Error(`chown ${dir}: ${chown.stderr}`);
  }
  let port = opts.port ?? (opts.netns ? 5432 : await freePort(host));
  let child: ReturnType<typeof Bun.spawn> | undefined;
  let logText = "";

  const launch = async (): Promise<void> => {
    const settings = { fsync: "off", full_page_writes: "off", max_connections: "200", log_min_messages: "warning", ...tls, ...opts.settings };
    const argv = [join(f.bin, "postgres"), "-D", join(dir, "data"), "-h", host, "-p", String(port), "-k", dir, ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
    const cmd = asServerUser(f, argv);
    const p = Bun.spawn(opts.netns ? ["ip", "netns", "exec", opts.netns, ...cmd] : cmd, { stdout: "ignore", stderr: "pipe" });
    child = p;
    const from = logText.length;
    // `ready` resolves once the server says so.
    const ready = drainUntil(p.stderr as ReadableStream<Uint8Array>, (text) => (logText += text), () => /ready to accept connections/.test(logText.slice(from)));
    const deadline = Bun.sleep(20_000).then(() => "timeout" as const);
    const outcome = await Promise.race([ready, deadline]);
    if (outcome === true) return;
    p.kill("SIGKILL");
    await p.exited;
    throw new Error(`postgres did not start (${outcome === "timeout" ? "no 'ready' within 20 s" : `exit ${p.exitCode}`}):\n${logText}`);
  };

  for (let attempt = 0; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      if (attempt < 3 && opts.port === undefined && !opts.netns && /could not bind|Address already in use/.test(logText)) {
        logText = "";
        port = await freePort(host);
        continue;
      }
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  const setup = new SQL(`postgres://postgres@localhost:${port}/postgres`, { path: dir, max: 1 });
  await setup.unsafe("CREATE ROLE waitlock LOGIN PASSWORD 'secret'");
  await setup.unsafe("CREATE DATABASE waitlock OWNER waitlock");
  await setup.close({ timeout: 0 });
  const admin = new SQL(`postgres://postgres@localhost:${port}/waitlock`, { path: dir, max: 2, idleTimeout: 0 });

  const server: PostgresServer = {
    host,
    get port() {
      return port;
    },
    get pid() {
      return child!.pid;
    },
    dir,
    admin,
    certificate: tls.ssl_cert_file,
    url(params = {}, user = "waitlock", password = "secret") {
      const q = new URLSearchParams(params).toString();
      return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/waitlock${q ? `?${q}` : ""}`;
    },
    log: () => logText,
    async stop(crash = false) {
      await stopServer(child, crash ? "SIGQUIT" : "SIGINT");
    },
    async start() {
      await launch();
    },
  };
  teardowns.push(async () => {
    await admin.close({ timeout: 0 }).catch(() => {});
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return server;
}
