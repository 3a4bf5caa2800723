// A throwaway syslog daemon for the --syslog tests: the installed rsyslogd, in the
// foreground as this test process's own child, with a configuration of its own that takes
// messages on a socket in a temporary directory and writes them with facility and level to
// a log there; stopped by its PID after the test (test/cleanup.ts), failed or not.
//
// syslog(3) always writes to /dev/log, so the commands under test run in a mount namespace
// of their own where that socket is bind-mounted over /dev/log (`wrap`): the machine's own
// syslog daemon, if any, is neither used nor disturbed. On a machine without /dev/log, an
// empty file stands there as the mount point while the daemon runs.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { teardowns } from "../cleanup";
import { mountNamespace } from "../needs";
import { drainUntil, stopServer } from "./drain";

/** The reason the syslog tests cannot run here, or undefined. */
export function rsyslogMissing(): string | undefined {
  if (!Bun.which("rsyslogd")) return "rsyslogd is not installed (apt-get install rsyslog)";
  if (!Bun.which("setpriv")) return "setpriv (util-linux) is missing";
  const ns = mountNamespace();
  return ns && `binding the daemon's socket over /dev/log needs a mount namespace: ${ns}`;
}

export interface SyslogServer {
  /** what the daemon has written: one line per message, `facility.level tag: message` */
  logged(): string;
  /** `argv` run with the daemon's socket as /dev/log */
  wrap(argv: string[]): string[];
}

/** Starts a throwaway rsyslogd; it is stopped after the current test. */
export async function startRsyslog(): Promise<SyslogServer> {
  const missing = rsyslogMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), "waitlock-rsyslog-"));
  const socket = join(dir, "log.sock");
  const log = join(dir, "syslog.log");
  const conf = join(dir, "rsyslog.conf");
  writeFileSync(
    conf,
    `global(workDirectory="${dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="${socket}")
template(name="WaitlockTest" type="string" string="%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\\n")
*.* action(type="omfile" file="${log}" template="WaitlockTest")
`,
  );
  writeFileSync(log, "");
  const mountPoint = !existsSync("/dev/log");
  let child: ReturnType<typeof Bun.spawn> | undefined;
  teardowns.push(async () => {
    await stopServer(child, "SIGTERM");
    rmSync(dir, { recursive: true, force: true });
    if (mountPoint) rmSync("/dev/log", { force: true });
  });
  if (mountPoint) writeFileSync("/dev/log", "");
  child = Bun.spawn(["setpriv", "--pdeathsig", "SIGKILL", "--", "rsyslogd", "-n", "-f", conf, "-i", join(dir, "rsyslogd.pid")], { stdout: "pipe", stderr: "pipe" });
  let output = "";
  drainUntil(child.stdout as ReadableStream<Uint8Array>, (t) => (output += t), () => false);
  drainUntil(child.stderr as ReadableStream<Uint8Array>, (t) => (output += t), () => false);
  const deadline = performance.now() + 10_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || performance.now() > deadline) throw new Error(`rsyslogd did not start (${child.exitCode === null ? "no socket within 10 s" : `exit ${child.exitCode}`}):\n${output}`);
    await Bun.sleep(20);
  }
  return {
    logged: () => readFileSync(log, "utf8"),
    wrap: (argv) => ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", 'mount --bind "$0" /dev/log && exec "$@"', socket, ...argv],
  };
}
