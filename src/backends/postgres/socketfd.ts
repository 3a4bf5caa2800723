// Which of this process's descriptors is a session's connection, so that an --exec command
// can inherit the session as it inherits a flock(2) descriptor: the one socket that
// appeared while the session connected. Linux only (/proc/self/fd); undefined elsewhere, or
// when more than one socket appeared (another connection opened meanwhile). Reading
// /proc/net/tcp to match ports instead is slow on a busy machine (bench/TUNING.md).
import { openDescriptors, readLink } from "../../../ffi/libc";

/** This process's sockets: inode → descriptor. */
export function sockets(): Map<string, number> {
  const found = new Map<string, number>();
  const fds = openDescriptors();
  if (typeof fds === "number") return found;
  for (const fd of fds) {
    const link = readLink(`/proc/self/fd/${fd}`, 64);
    // A descriptor closed meanwhile gives a negative errno.
    if (typeof link === "string" && link.startsWith("socket:[")) found.set(link, fd);
  }
  return found;
}

/** The descriptor of the one socket that is open now and was not in `before`, if there is exactly one. */
export function socketOpenedSince(before: Map<string, number>): number | undefined {
  const fresh = [...sockets()].filter(([inode]) => !before.has(inode));
  return fresh.length === 1 ? fresh[0]![1] : undefined;
}
