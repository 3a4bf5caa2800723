// A throwaway PgBouncer in front of a test server (test/servers/postgres.ts), in transaction
// pooling mode: the pooler that breaks session advisory locks. Run as the servers' account
// (it refuses root), as this test's child, stopped by PID after the test.
import { chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { teardowns } from "../cleanup";
import { asServerUser, findPostgres, freePort, type PostgresServer } from "./postgres";
import { drainUntil } from "./drain";

/** Why a PgBouncer cannot be started here, or undefined. */
export function pgbouncerMissing(): string | undefined {
  return Bun.which("pgbouncer") ? undefined : "pgbouncer is not installed (apt-get install pgbouncer)";
}

/**
 * Starts PgBouncer for database waitlock of `server` on a free port of 127.0.0.1; `ignore`
 * lists startup parameters it drops instead of refusing the login. Returns its URL
 * (user waitlock, password secret).
 */
export async function startPgbouncer(server: PostgresServer, ignore: string[] = []): Promise<string> {
  const f = findPostgres();
  if (typeof f === "string") throw new Error(f);
  const dir = mkdtempSync(join(tmpdir(), "waitlock-pgbouncer-"));
  const port = await freePort("127.0.0.1");
  writeFileSync(join(dir, "users.txt"), `"waitlock" "secret"\n`);
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `waitlock = host=${server.host} port=${server.port} dbname=waitlock`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = scram-sha-256",
      `auth_file = ${join(dir, "users.txt")}`,
      "pool_mode = transaction",
      `ignore_startup_parameters = ${["extra_float_digits", ...ignore].join(",")}`,
      "",
    ].join("\n"),
  );
  if (f.user) {
    chownSync(dir, f.user.uid, f.user.gid);
    for (const file of ["users.txt", "pgbouncer.ini"]) chownSync(join(dir, file), f.user.uid, f.user.gid);
  }
  const p = Bun.spawn(asServerUser(f, ["pgbouncer", join(dir, "pgbouncer.ini")], "SIGTERM"), { stdout: "ignore", stderr: "pipe" });
  let log = "";
  const up = drainUntil(p.stderr as ReadableStream<Uint8Array>, (text) => (log += text), () => /process up/.test(log));
  teardowns.push(async () => {
    p.kill("SIGTERM");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  });
  const ready = await Promise.race([up, Bun.sleep(10_000).then(() => false)]);
  if (!ready) throw new Error(`pgbouncer did not start:\n${log}`);
  return `postgres://waitlock:secret@127.0.0.1:${port}/waitlock`;
}
