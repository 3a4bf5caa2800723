// Several "hosts" on one machine: one network namespace each, joined by veth pairs to a
// bridge in a "switch" namespace. Addresses are in 127.0.0.0/8 (route_localnet=1 lets them
// leave the loopback device), so that nothing here can reach or be reached from a real
// network. Taking a host's port on the switch down is a silent partition: the host's own
// link stays up, nothing is reset, packets just stop. Needs root; the namespaces are
// deleted after the test, by the names made here.
import { teardowns } from "./cleanup";

export interface Host {
  name: string;
  /** the network namespace */
  netns: string;
  address: string;
  /** argv that runs `argv` inside this host */
  run(argv: string[]): string[];
  /** silent partition: the switch stops forwarding to and from this host */
  partition(): void;
  heal(): void;
}

function ip(args: string[]): void {
  const p = Bun.spawnSync(["ip", ...args], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${p.stderr.toString().trim()}`);
}

let missing: string | undefined | null = null;

/** Why hosts cannot be simulated here, or undefined. */
export function netnsMissing(): string | undefined {
  if (missing !== null) return missing;
  if (process.platform !== "linux") return (missing = "network namespaces are Linux-only");
  if (process.getuid?.() !== 0) return (missing = "simulating hosts needs root (network namespaces)");
  if (!Bun.which("ip")) return (missing = "ip (iproute2) is missing");
  const probe = `wl${process.pid}probe`;
  const add = Bun.spawnSync(["ip", "netns", "add", probe], { stderr: "pipe" });
  if (add.exitCode !== 0) return (missing = `cannot create a network namespace: ${add.stderr.toString().trim()}`);
  Bun.spawnSync(["ip", "netns", "del", probe]);
  return (missing = undefined);
}

let networks = 0;

/**
 * Hosts named `names` (addresses 127.1.0.1, 127.1.0.2, ... in that order) on one switch.
 * Everything is removed after the current test.
 */
export function createHosts(names: string[]): Record<string, Host> {
  const prefix = `wl${process.pid}n${++networks}`;
  const sw = `${prefix}-sw`;
  const made: string[] = [];
  teardowns.push(() => {
    for (const ns of made.reverse()) Bun.spawnSync(["ip", "netns", "del", ns]);
  });
  const addNs = (ns: string) => {
    ip(["netns", "add", ns]);
    made.push(ns);
    ip(["-n", ns, "link", "set", "lo", "up"]);
  };
  addNs(sw);
  ip(["-n", sw, "link", "add", "br0", "type", "bridge"]);
  ip(["-n", sw, "link", "set", "br0", "up"]);
  const hosts: Record<string, Host> = {};
  names.forEach((name, i) => {
    const ns = `${prefix}-${name}`;
    const port = `p${i + 1}`;
    const address = `127.1.0.${i + 1}`;
    addNs(ns);
    ip(["link", "add", port, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    ip(["-n", sw, "link", "set", port, "master", "br0", "up"]);
    const sysctl = Bun.spawnSync(["ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet"], { stderr: "pipe" });
    if (sysctl.exitCode !== 0) throw new Error(`route_localnet in ${ns}: ${sysctl.stderr}`);
    ip(["-n", ns, "addr", "add", `${address}/16`, "dev", "eth0"]);
    ip(["-n", ns, "link", "set", "eth0", "up"]);
    hosts[name] = {
      name,
      netns: ns,
      address,
      run: (argv) => ["ip", "netns", "exec", ns, ...argv],
      partition: () => ip(["-n", sw, "link", "set", port, "down"]),
      heal: () => ip(["-n", sw, "link", "set", port, "up"]),
    };
  });
  return hosts;
}
