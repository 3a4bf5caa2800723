import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { passwordFromFile } from "../../src/backends/postgres/pgpass";
import { sessionSettings } from "../../src/backends/postgres/session";
import { CLASSID, lockKey, releaseChannel } from "../../src/backends/postgres/sql";
import { describeTarget, parsePostgresUrl } from "../../src/backends/postgres/url";

const env = { PGUSER: undefined, PGPASSWORD: undefined, PGDATABASE: undefined, PGHOST: undefined, PGPORT: undefined, PGSSLMODE: undefined };

function failure(url: string, e: Record<string, string | undefined> = env): { exitCode: number; message: string } {
  try {
    parsePostgresUrl(url, e);
  } catch (err) {
    return err as { exitCode: number; message: string };
  }
  throw new Error(`${url} was accepted`);
}

describe("the --backend URL", () => {
  test("libpq's form, with libpq's defaults and waitlock's timing defaults", () => {
    const t = parsePostgresUrl("postgres://app:s%3Acret@db.example:6432/locks", env);
    expect(t).toMatchObject({ hostname: "db.example", port: 6432, user: "app", password: "s:cret", database: "locks", sslmode: "prefer", label: "db.example:6432" });
    expect(t).toMatchObject({ connectTimeout: 10, heartbeat: 1, confirmTimeout: 2, releaseTimeout: 9 });
    const d = parsePostgresUrl("postgresql://db", { ...env, PGUSER: "carol", PGPASSWORD: "pw", PGSSLMODE: "require" });
    expect(d).toMatchObject({ port: 5432, user: "carol", password: "pw", database: "carol", sslmode: "require" });
    expect(parsePostgresUrl("postgres://[::1]:5433/x", env).label).toBe("[::1]:5433");
    expect(parsePostgresUrl("postgres://u@h/x?sslmode=verify-full&sslrootcert=/ca.pem&release_timeout=30&confirm_timeout=5&heartbeat=0.5", env)).toMatchObject({
      sslmode: "verify-full",
      tls: { sslrootcert: "/ca.pem" },
      releaseTimeout: 30,
      confirmTimeout: 5,
      heartbeat: 0.5,
    });
  });

  test("bad URLs are usage errors (3) that name the fault and never repeat the password", () => {
    const bad = {
      "postgres://u:hunter2@h:0/x": "port",
      "postgres://u:hunter2@h/x?keepalives_idle=2": "unknown URL parameter 'keepalives_idle'",
      "postgres://u:hunter2@h/x?sslmode=maybe": "sslmode",
      "postgres://u:hunter2@h/x?heartbeat=2": "heartbeat",
      "postgres://u:hunter2@h/x?release_timeout=3": "confirm_timeout must be more than 1 second shorter",
      "postgres://u:hunter2@h/x?confirm_timeout=abc": "confirm_timeout",
      "postgres://u:hunter2@/x": "not a valid",
      "postgres:///x": "no host",
      "mysql://u:hunter2@h/x": "unsupported scheme",
      "postgres://u:hunter2@h/a/b": "one database",
      "postgres://u:hunter2@h:99999/x": "not a valid",
    };
    for (const [url, says] of Object.entries(bad)) {
      const e = failure(url);
      expect({ url, exitCode: e.exitCode, says: e.message.includes(says) }).toEqual({ url, exitCode: 3, says: true });
      expect(e.message).not.toContain("hunter2");
    }
  });

  test("shown without password or parameters", () => {
    expect(describeTarget(parsePostgresUrl("postgres://app:hunter2@db:5432/locks?heartbeat=0.5", env))).toBe("postgres://app@db:5432/locks");
  });
});

describe("session settings", () => {
  test("the server drops a silent host's session one second before release_timeout, probing every second", () => {
    const s = sessionSettings(parsePostgresUrl("postgres://u@h/x", env));
    expect(s).toMatchObject({ tcp_user_timeout: 8000, tcp_keepalives_idle: 4, tcp_keepalives_interval: 1, client_connection_check_interval: 1000, statement_timeout: 0 });
    const long = sessionSettings(parsePostgresUrl("postgres://u@h/x?release_timeout=86400", env));
    expect(long).toMatchObject({ tcp_keepalives_idle: 32767, tcp_keepalives_count: 127 });
  });
});

describe("the lock space", () => {
  test("keys: the top-cleared first 4 bytes of md5('NAME.slotK'), under classid 0x57414C4B", () => {
    expect(CLASSID).toBe(1463897163);
    // md5("demo.slot0") = 2bc8b3f9...; 0x2bc8b3f9 = 734584825
    expect(lockKey("demo.slot0")).toBe(734584825);
    expect(lockKey("demo.slot0")).toBe(Number.parseInt(new Bun.CryptoHasher("md5").update("demo.slot0").digest("hex").slice(0, 8), 16) & 0x7fffffff);
    expect(releaseChannel("demo")).toBe(`waitlock_${lockKey("demo.queue")}`);
  });
});

describe("the password file", () => {
  test("first matching line, * as a wildcard, \\: and \\\\ escaped; ignored when others may read it", () => {
    const dir = mkdtempSync(join(tmpdir(), "waitlock-pgpass-"));
    try {
      const file = join(dir, "pgpass");
      writeFileSync(file, ["# comment", "other:5432:*:app:no", "db:*:locks:app:pa\\:ss\\\\word", "*:*:*:app:fallback", ""].join("\n"));
      chmodSync(file, 0o600);
      const e = { PGPASSFILE: file };
      expect(passwordFromFile("db", 5432, "locks", "app", e)).toBe("pa:ss\\word");
      expect(passwordFromFile("db", 5432, "else", "app", e)).toBe("fallback");
      expect(passwordFromFile("db", 5432, "locks", "bob", e)).toBeUndefined();
      chmodSync(file, 0o644);
      expect(passwordFromFile("db", 5432, "locks", "app", e)).toBeUndefined();
      expect(passwordFromFile("db", 5432, "locks", "app", { PGPASSFILE: join(dir, "missing") })).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("the default user is the login name from /etc/passwd (libpq's getpwuid), not $USER", () => {
  const uid = process.getuid!();
  const line = require("node:fs").readFileSync("/etc/passwd", "utf8").split("\n").find((l: string) => l.split(":")[2] === String(uid));
  const expected = line ? line.split(":")[0] : String(uid);
  expect(parsePostgresUrl("postgres://h/db", {}).user).toBe(expected);
  expect(parsePostgresUrl("postgres://h/db", { USER: "somebody-else", LOGNAME: "another" }).user).toBe(expected);
  expect(parsePostgresUrl("postgres://h/db", { PGUSER: "pg" }).user).toBe("pg");
});
