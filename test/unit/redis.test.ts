import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base, namePattern, parseHolderKey, releasedChannel, sharedKey, slotKey } from "../../src/backends/redis/scripts";
import { clientUrl, describeTarget, parseRedisUrl } from "../../src/backends/redis/url";

const env = { REDISCLI_AUTH: undefined };

function failure(url: string): { exitCode: number; message: string } {
  try {
    parseRedisUrl(url, env);
  } catch (err) {
    return err as { exitCode: number; message: string };
  }
  throw new Error(`${url} was accepted`);
}

describe("the redis:// URL", () => {
  test("redis-cli's form, with waitlock's timing defaults; rediss:// is TLS; the password from REDISCLI_AUTH when the URL has none", () => {
    const t = parseRedisUrl("redis://app:s%3Acret@cache.example:6380/3", env);
    expect(t).toMatchObject({ hostname: "cache.example", port: 6380, user: "app", password: "s:cret", db: 3, tls: false, label: "cache.example:6380" });
    expect(t).toMatchObject({ connectTimeout: 10, heartbeat: 1, confirmTimeout: 2, ttl: 10, grace: 5 });
    expect(parseRedisUrl("redis://h", env)).toMatchObject({ port: 6379, db: 0, user: undefined, password: undefined });
    expect(parseRedisUrl("redis://h", { REDISCLI_AUTH: "pw" }).password).toBe("pw");
    expect(parseRedisUrl("redis://[::1]:7000", env).label).toBe("[::1]:7000");
    expect(parseRedisUrl("rediss://h/0?ttl=30&confirm_timeout=5&heartbeat=0.5&grace=20", env)).toMatchObject({ tls: true, ttl: 30, confirmTimeout: 5, heartbeat: 0.5, grace: 20 });
    const dir = mkdtempSync(join(tmpdir(), "waitlock-unit-"));
    try {
      writeFileSync(join(dir, "ca.pem"), "PEM");
      expect(parseRedisUrl(`rediss://h?cacert=${dir}/ca.pem`, env).ca).toBe("PEM");
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test("bad URLs are usage errors (3) that name the fault and never repeat the password", () => {
    const bad = {
      "redis://:hunter2@h:0": "port",
      "redis://:hunter2@h/x": "database number",
      "redis://:hunter2@h/0?timeout=2": "unknown URL parameter 'timeout'",
      "redis://:hunter2@h/0?heartbeat=2": "heartbeat",
      "redis://:hunter2@h/0?ttl=3": "more than 1 second shorter than ttl",
      "redis://:hunter2@h/0?ttl=7": "confirm_timeout + grace",
      "redis://:hunter2@h/0?cacert=/ca.pem": "cacert is for rediss://",
      "rediss://:hunter2@h/0?cacert=/nonexistent/ca.pem": "cannot read",
      "memcache://:hunter2@h": "unsupported scheme",
      "redis://:hunter2@": "not a valid",
    };
    for (const [url, says] of Object.entries(bad)) {
      const e = failure(url);
      expect({ url, exitCode: e.exitCode, says: e.message }).toEqual({ url, exitCode: 3, says: expect.stringContaining(says) });
      expect(e.message).not.toContain("hunter2");
    }
  });

  test("shown without password or parameters; the client's URL keeps user, password and database", () => {
    const t = parseRedisUrl("rediss://app:p%40ss@h:6380/2?ttl=20", env);
    expect(describeTarget(t)).toBe("rediss://app@h:6380/2");
    expect(clientUrl(t)).toBe("rediss://app:p%40ss@h:6380/2");
    expect(clientUrl(parseRedisUrl("redis://:pw@h", env))).toBe("redis://:pw@h:6379/0");
  });
});

describe("the lock space", () => {
  test("keys are namespaced to waitlock and never equal NAME; a SCAN pattern escapes glob characters", () => {
    expect(base("nightly")).toBe("waitlock:{nightly}");
    expect(slotKey("nightly", 2)).toBe("waitlock:{nightly}:slot2");
    expect(releasedChannel("nightly")).toBe("waitlock:{nightly}:released");
    expect(parseHolderKey("waitlock:{a}:slot3}:slot1")).toEqual(["a}:slot3", 1, false]);
    expect(parseHolderKey(sharedKey("r", "00ff"))).toEqual(["r", 0, true]);
    expect(parseHolderKey("waitlock:{a}:token")).toBeUndefined();
    expect(parseHolderKey("waitlock:{a}:waiter:w00ff")).toBeUndefined();
    expect(namePattern("a*b?[c]")).toBe("waitlock:{a\\*b\\?\\[c\\]}:*");
    expect(namePattern()).toBe("waitlock:{*");
  });
});
