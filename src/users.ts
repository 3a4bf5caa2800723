// User names, as getpwuid(3) would give them, read from /etc/passwd (no NSS: LDAP or
// systemd-homed users are shown by number). Bun's os.userInfo() reads $USER instead.
import { getuid } from "../ffi/libc";

/** User names by UID, from /etc/passwd; empty when it cannot be read. */
export function userNames(): Map<number, string> {
  const names = new Map<number, string>();
  try {
    const { readFileSync } = require("node:fs") as typeof import("node:fs");
    for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const [user, , uid] = line.split(":");
      if (user && uid && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), user);
    }
  } catch {
    // No passwd file: users are shown by number.
  }
  return names;
}

/** The login name of this process's user (libpq's default user name): /etc/passwd, else LOGNAME or USER, else the UID. */
export function loginName(env: Record<string, string | undefined> = process.env): string {
  const uid = getuid();
  return userNames().get(uid) ?? env.LOGNAME ?? env.USER ?? String(uid);
}
