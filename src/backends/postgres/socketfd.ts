// Which of this process's descriptors is the TCP connection whose local port the server saw
// (inet_client_port()), so that an --exec command can inherit the session as it inherits a
// flock(2) descriptor. Linux only (/proc); undefined elsewhere, or when an address
// translator between us and the server changed the port.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const ESTABLISHED = "01";

function inodeOf(localPort: number, remotePort: number): string | undefined {
  const local = `:${localPort.toString(16).toUpperCase().padStart(4, "0")}`;
  const remote = `:${remotePort.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c[1]?.endsWith(local) && c[2]?.endsWith(remote) && c[3] === ESTABLISHED) return c[9];
    }
  }
  return undefined;
}

/** The descriptor of our TCP connection from `localPort` to `remotePort`, if it can be found. */
export function socketDescriptor(localPort: number | null, remotePort: number): number | undefined {
  if (process.platform !== "linux" || !localPort) return undefined;
  const inode = inodeOf(localPort, remotePort);
  if (!inode) return undefined;
  const wanted = `socket:[${inode}]`;
  let fds: string[];
  try {
    fds = readdirSync("/proc/self/fd");
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === wanted) return Number(fd);
    } catch {
      // closed meanwhile
    }
  }
  return undefined;
}
