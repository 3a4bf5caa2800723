// User names, as getpwuid(3) would give them, read from /etc/passwd (no NSS: LDAP or
// systemd-homed users are shown by number). Bun's os.userInfo() reads $USER instead.
import { getuid, readFileBytes } from "../ffi/libc";

/** User names by UID, from /etc/passwd (its first 16 MiB); empty when it cannot be read. */
export function userNames(): Map<number, string> {
  const names = new Map<number, string>();
  const passwd = readFileBytes("/etc/passwd", 1 << 24);
  // No passwd file: users are shown by number.
  if (typeof passwd === "number") return names;
  for (const line of new TextDecoder().decode(passwd).split("\n")) {
    const [user, , uid] = line.split(":");
    if (user && uid && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), user);
  }
  return names;
}

/** The login name of this process's user (libpq's default user name): /etc/passwd, else LOGNAME or USER, else the UID. */
export function loginName(env: Record<string, string | undefined> = process.env): string {
  const uid = getuid();
  return userNames().get(uid) ?? env.LOGNAME ?? env.USER ?? String(uid);
}
