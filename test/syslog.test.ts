// --syslog against a real syslog daemon: a throwaway rsyslogd per test (test/servers/rsyslog.ts),
// whose socket the commands under test see as /dev/log.
import { expect } from "bun:test";
import { existsSync } from "node:fs";
import { BIN, lockDir, needs, run, start, tool, waitFor } from "./helpers";
import { rsyslogMissing, startRsyslog, type SyslogServer } from "./servers/rsyslog";

const syslog = rsyslogMissing();

const lineIn = (s: SyslogServer, pattern: RegExp) => waitFor(`syslog line ${pattern}`, () => pattern.test(s.logged()), 10_000);

/** Runs a shell snippet with the daemon's socket as /dev/log; $WL is the binary, $D the lock directory. */
const shUnder = (s: SyslogServer, script: string, dir: string) => run(s.wrap(["/bin/sh", "-c", script]), { env: { WL: BIN, D: dir } });

needs(syslog)("--syslog: the four lock events reach syslog with ident waitlock, the PID, the facility and the level", async () => {
  const s = await startRsyslog();
  const d = lockDir();
  const name = `syslog-${process.pid}-${Date.now()}`;
  const holder = start(s.wrap(["/bin/sh", "-c", `exec "$WL" --syslog --syslog-facility local5 -d "$D" ${name} --exec sh -c 'touch "$D/ready"; read -r _ || true'`]), {
    env: { WL: BIN, D: d },
    stdin: "pipe",
  });
  await waitFor("holder", () => existsSync(`${d}/ready`));
  const waiter = await run(s.wrap([BIN, "--syslog", "--syslog-facility", "local5", "-d", d, "-t", "0.3", name, "--exec", "true"]));
  expect(waiter.code).toBe(2);
  holder.stdin!.end();
  expect(await holder.exited).toBe(0);
  // The holder is the shell's exec'd waitlock, under unshare's exec'd sh: the PID started.
  const pid = holder.pid;
  await lineIn(s, new RegExp(`local5\\.info waitlock\\[${pid}\\]: acquired lock '${name}' slot 0/1 for 'sh -c .*'`));
  await lineIn(s, new RegExp(`local5\\.warning waitlock\\[\\d+\\]: lock '${name}' held by PID ${pid}, waiting`));
  await lineIn(s, new RegExp(`local5\\.warning waitlock\\[\\d+\\]: timeout waiting for lock '${name}' after 0.3 seconds`));
  await lineIn(s, new RegExp(`local5\\.info waitlock\\[${pid}\\]: released lock '${name}' after \\d+\\.\\d\\d seconds`));
});

needs(syslog)("--syslog: a plain acquire logs acquisition, and its holder logs the release when the owner exits", async () => {
  const s = await startRsyslog();
  const d = lockDir();
  const name = `syslog-hold-${process.pid}-${Date.now()}`;
  const r = await shUnder(s, `"$WL" --syslog -d "$D" ${name}; echo $$`, d);
  expect(r.code).toBe(0);
  await lineIn(s, new RegExp(`daemon\\.info waitlock\\[\\d+\\]: acquired lock '${name}' slot 0/1 for '/bin/sh -c .*'`));
  await lineIn(s, new RegExp(`daemon\\.info waitlock\\[\\d+\\]: released lock '${name}' after \\d+\\.\\d\\d seconds`));
});

needs(syslog, tool("logger"))("without --syslog nothing is logged", async () => {
  const s = await startRsyslog();
  const d = lockDir();
  const name = `syslog-off-${process.pid}-${Date.now()}`;
  expect((await run(s.wrap([BIN, "-d", d, name, "--exec", "true"]))).code).toBe(0);
  // A marker logged after the run arrives after anything the run would have logged.
  const marker = `marker-${name}`;
  expect((await run(s.wrap(["logger", "-p", "local5.info", marker]))).code).toBe(0);
  await lineIn(s, new RegExp(marker));
  expect(s.logged()).not.toContain(`'${name}'`);
});
