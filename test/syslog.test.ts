// --syslog against a real syslog daemon. .ci/run installs and starts rsyslog with a log that
// shows facility and level (WAITLOCK_SYSLOG_LOG) and sets WAITLOCK_TEST_STRICT=1, so in CI
// these tests cannot be skipped; elsewhere they run when a daemon listens on /dev/log and
// its log is readable.
import { expect } from "bun:test";
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { lockDir, needs, sh, start, startSh, tool, waitFor, wl } from "./helpers";

const LOG = process.env.WAITLOCK_SYSLOG_LOG ?? "/var/log/syslog";
const withLevels = process.env.WAITLOCK_SYSLOG_LOG !== undefined;

function noDaemon(): string | undefined {
  if (!existsSync("/dev/log") || !statSync("/dev/log").isSocket()) return "no syslog daemon listens on /dev/log (.ci/run starts one)";
  try {
    accessSync(LOG, constants.R_OK);
  } catch (e) {
    return `cannot read the syslog daemon's log ${LOG} (${(e as { code?: string }).code}; WAITLOCK_SYSLOG_LOG names another)`;
  }
}
const daemon = noDaemon();

const logged = () => readFileSync(LOG, "utf8");
const lineFor = (pattern: RegExp) => waitFor(`syslog line ${pattern}`, () => pattern.test(logged()), 10_000);

needs(daemon)("the four lock events reach syslog with ident waitlock, the PID, the facility and the level", async () => {
  const d = lockDir();
  const name = `syslog-${process.pid}-${Date.now()}`;
  const holder = startSh(`exec "$WL" --syslog --syslog-facility local5 -d "$D" ${name} --exec sh -c 'touch "$D/ready"; read -r _ || true'`, d);
  await waitFor("holder", () => existsSync(`${d}/ready`));
  const waiter = await wl(["--syslog", "--syslog-facility", "local5", "-d", d, "-t", "0.3", name, "--exec", "true"]);
  expect(waiter.code).toBe(2);
  holder.stdin!.end();
  expect(await holder.exited).toBe(0);

  const level = (l: string) => (withLevels ? `local5\\.${l} ` : "");
  const pid = holder.pid;
  await lineFor(new RegExp(`${level("info")}waitlock\\[${pid}\\]: acquired lock '${name}' slot 0/1 for 'sh -c .*'`));
  await lineFor(new RegExp(`${level("warning")}waitlock\\[\\d+\\]: lock '${name}' held by PID ${pid}, waiting`));
  await lineFor(new RegExp(`${level("warning")}waitlock\\[\\d+\\]: timeout waiting for lock '${name}' after 0.3 seconds`));
  await lineFor(new RegExp(`${level("info")}waitlock\\[${pid}\\]: released lock '${name}' after \\d+\\.\\d\\d seconds`));
});

needs(daemon)("a plain acquire logs acquisition, and its holder logs the release when the owner exits", async () => {
  const d = lockDir();
  const name = `syslog-hold-${process.pid}-${Date.now()}`;
  const r = await sh(`"$WL" --syslog -d "$D" ${name}; echo $$`, d);
  expect(r.code).toBe(0);
  await lineFor(new RegExp(`${withLevels ? "daemon\\.info " : ""}waitlock\\[\\d+\\]: acquired lock '${name}' slot 0/1 for '/bin/sh -c .*'`));
  await lineFor(new RegExp(`${withLevels ? "daemon\\.info " : ""}waitlock\\[\\d+\\]: released lock '${name}' after \\d+\\.\\d\\d seconds`));
});

needs(daemon, tool("logger"))("without --syslog nothing is logged", async () => {
  const d = lockDir();
  const name = `syslog-off-${process.pid}-${Date.now()}`;
  expect((await wl(["-d", d, name, "--exec", "true"])).code).toBe(0);
  // A marker logged after the run arrives after anything the run would have logged.
  const marker = `marker-${name}`;
  start(["logger", "-p", "local5.info", marker]);
  await lineFor(new RegExp(marker));
  expect(logged()).not.toContain(`'${name}'`);
});
