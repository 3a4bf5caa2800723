// --check, --done and --list.
import { expect, test } from "bun:test";
import { chmodSync, existsSync, readdirSync, writeFileSync } from "node:fs";
import { encodeRecord } from "../src/record";
import { BIN, alive, held, listJson, lockDir, needs, queuedInKernel, sh, start, startSh, tool, unprivileged, unprivilegedNeeds, userName, waitFor, wl } from "./helpers";

// The USER column shows whoever runs the suite.
const USER = userName();
const USER_RE = USER.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

test("--check: 0 when a slot is free, 1 when all are held; it creates and takes nothing", async () => {
  const d = lockDir();
  expect((await wl(["-d", d, "--check", "c"])).code).toBe(0);
  expect(readdirSync(d)).toEqual([]);
  start([BIN, "-d", d, "-m", "2", "c", "--exec", "sleep", "30"]);
  await waitFor("first holder", () => existsSync(`${d}/c.slot0.lock`));
  expect((await wl(["-d", d, "--check", "c"])).code).toBe(1);
  expect((await wl(["-d", d, "--check", "-m", "2", "c"])).code).toBe(0);
  start([BIN, "-d", d, "-m", "2", "c", "--exec", "sleep", "30"]);
  await waitFor("second holder", () => held(d, "c", 2));
  const files = readdirSync(d).sort();
  expect(files).toContain("c.slot1.lock");
  expect((await wl(["-d", d, "--check", "-m", "2", "c"])).code).toBe(1);
  expect((await wl(["-d", d, "--check", "-m", "3", "c"])).code).toBe(0);
  expect(readdirSync(d).sort()).toEqual(files);
  // Nor a missing lock directory.
  expect((await wl(["-d", `${d}/none`, "--check", "c"])).code).toBe(0);
  expect(existsSync(`${d}/none`)).toBe(false);
});

test("--check never disturbs a waiter: it still gets the slot as soon as it is released", async () => {
  const d = lockDir();
  const holder = startSh(`exec "$WL" -d "$D" c --exec sh -c 'read -r _'`, d);
  await waitFor("holder", () => held(d, "c"));
  const waiter = start([BIN, "-d", d, "-t", "20", "c", "--exec", "true"]);
  for (let i = 0; i < 20; i++) expect((await wl(["-d", d, "--check", "c"])).code).toBe(1);
  holder.stdin!.end();
  expect(await waiter.exited).toBe(0);
});

needs(unprivilegedNeeds())("--check: 2 when it cannot tell", async () => {
  const d = lockDir();
  chmodSync(d, 0o000);
  const r = await unprivileged(["-d", `${d}/sub`, "--check", "c"]);
  chmodSync(d, 0o700);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/^waitlock: .+: .+\n$/);
});

test("--done: signals every holder of NAME and the script a plain acquire holds it for, waits until the slots are free, exits 0; 1 when nobody held it", async () => {
  const d = lockDir();
  const a = startSh(`"$WL" -d "$D" -m 2 job && "$WL" -d "$D" -m 2 other || exit 9; touch "$D/a"; read -r _`, d);
  const b = start([BIN, "-d", d, "-m", "2", "job", "--exec", "sleep", "30"]);
  await waitFor("two holders", () => existsSync(`${d}/a`) && existsSync(`${d}/job.slot1.lock`));
  await waitFor("records", async () => (await listJson(d)).length === 3);
  const holders = (await listJson(d)).filter((r) => r.descriptor === "job").map((r) => r.pid!);
  const r = await wl(["-d", d, "--done", "job"]);
  expect(r).toMatchObject({ code: 0, stderr: "" });
  expect(await held(d, "job", 2)).toBe(false);
  expect((await wl(["-d", d, "--check", "job"])).code).toBe(0);
  expect(await b.exited).toBe(143);
  for (const pid of holders) await waitFor(`holder ${pid} to exit`, () => !alive(pid));
  // The script that held 'job' was stopped with it (its work must not run on unprotected),
  // and its other lock went with it.
  expect(await a.exited).toBe(143);
  await waitFor("the script's other lock to go", async () => (await listJson(d)).length === 0);
  expect((await wl(["-d", d, "--done", "job"])).code).toBe(1);
  expect((await wl(["-d", d, "--done", "never"])).code).toBe(1);
});

test("--done from the script that holds the lock releases it and leaves the script running", async () => {
  const d = lockDir();
  const r = await sh(`"$WL" -d "$D" mine || exit 9; "$WL" -d "$D" --done mine || exit 8; "$WL" -d "$D" -t 0 mine || exit 7; echo still here`, d);
  expect(r).toMatchObject({ code: 0, stdout: "still here\n" });
});

test("--list: human, csv (RFC 4180), null and json", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "-m", "2", "alpha", "--exec", "sh", "-c", 'sleep 30; echo "a, \\"quoted\\" b"']);
  start([BIN, "-d", d, "beta", "--exec", "sleep", "30"]);
  await waitFor("records", async () => (await listJson(d)).length === 2);

  const human = (await wl(["-d", d, "--list"])).stdout.split("\n");
  expect(human[0]).toMatch(/^DESCRIPTOR\s+SLOT\s+MODE\s+PID\s+OWNER\s+USER\s+ACQUIRED\s+COMMAND$/);
  expect(human[1]).toMatch(new RegExp(`^alpha\\s+0\\/2\\s+exclusive\\s+\\d+\\s+\\d+\\s+${USER_RE}\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+sh -c sleep 30; echo`));
  expect(human[2]).toMatch(new RegExp(`^beta\\s+0\\/1\\s+exclusive\\s+\\d+\\s+\\d+\\s+${USER_RE}\\s+.*sleep 30$`));

  const csv = (await wl(["-d", d, "--list", "-f", "csv"])).stdout.trimEnd().split("\n");
  expect(csv[0]).toBe("descriptor,pid,slot,user,acquired,status,command");
  const alphaCommand = 'sh -c sleep 30; echo "a, \\"quoted\\" b"';
  expect(csv[1]).toMatch(new RegExp(`^alpha,\\d+,0,${USER_RE},\\d{10},active,`));
  expect(csv[1]!.split(",active,")[1]).toBe(`"${alphaCommand.replaceAll('"', '""')}"`);
  expect(csv[2]).toMatch(new RegExp(`^beta,\\d+,0,${USER_RE},\\d{10},active,sleep 30$`));

  const nul = (await wl(["-d", d, "--list", "-f", "null"])).stdout;
  const fields = nul.split("\0");
  expect(fields.pop()).toBe("");
  expect(fields).toHaveLength(14);
  expect(fields.slice(7, 14)).toEqual(["beta", expect.stringMatching(/^\d+$/), "0", USER, expect.stringMatching(/^\d+$/), "active", "sleep 30"]);

  const json = await listJson(d);
  expect(json[1]).toMatchObject({ descriptor: "beta", slot: 0, status: "active", mode: "exclusive", type: "mutex", maxHolders: 1, command: "sleep 30" });
  expect(Object.keys(json[0]!).sort()).toEqual(["acquired", "command", "descriptor", "file", "format", "hostname", "maxHolders", "mode", "owner", "pid", "sha256", "slot", "status", "type", "uid", "user"]);

  const only = await listJson(d, ["beta"]);
  expect(only.map((r) => r.descriptor)).toEqual(["beta"]);
});

test("--list --all and --stale-only show the records of holders killed before they could clean up", async () => {
  const d = lockDir();
  const p = start([BIN, "-d", d, "gone", "--exec", "sh", "-c", 'touch "$0/ready"; exec sleep 30', d]);
  start([BIN, "-d", d, "live", "--exec", "sleep", "30"]);
  await waitFor("both", async () => existsSync(`${d}/ready`) && (await listJson(d)).length === 2);
  const cmd = (await listJson(d)).find((r) => r.descriptor === "gone")!.owner!;
  process.kill(p.pid, "SIGKILL");
  process.kill(cmd, "SIGKILL");
  await waitFor("slot freed", async () => !(await held(d, "gone")));
  expect((await listJson(d)).map((r) => r.descriptor)).toEqual(["live"]);
  expect((await listJson(d, ["--all"])).map((r) => [r.descriptor, r.status])).toEqual([["gone", "stale"], ["live", "active"]]);
  expect((await listJson(d, ["--stale-only"])).map((r) => [r.descriptor, r.status])).toEqual([["gone", "stale"]]);
  const human = (await wl(["-d", d, "--list", "--all"])).stdout;
  expect(human).toMatch(/STATUS/);
  expect(human).toMatch(/^gone\s.*\sstale\s/m);
  // A stale record never blocks anybody.
  expect((await wl(["-d", d, "-t", "0", "gone", "--exec", "true"])).code).toBe(0);
});

needs(unprivilegedNeeds())("--list exits 0 with no locks, and 1 when it cannot read the directory", async () => {
  const d = lockDir();
  expect(await wl(["-d", d, "--list", "-f", "csv"])).toMatchObject({ code: 0, stdout: "descriptor,pid,slot,user,acquired,status,command\n" });
  expect((await wl(["-d", d, "--list", "-f", "json"])).stdout).toBe("[]\n");
  chmodSync(d, 0o300);
  const r = await unprivileged(["-d", d, "--list"]);
  chmodSync(d, 0o700);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^waitlock: .+: .+\n$/);
});

needs(tool("flock"))("--done signals only a process that has the slot file open: the command of a SIGKILLed waitlock --exec, never a stranger named by a stale record", async () => {
  const d = lockDir();
  const p = start([BIN, "-d", d, "orphan", "--exec", "sh", "-c", 'trap "exit 0" TERM; touch "$0/ready"; while :; do sleep 0.02; done', d]);
  await waitFor("command", () => existsSync(`${d}/ready`));
  await waitFor("record", async () => (await listJson(d)).length === 1);
  process.kill(p.pid, "SIGKILL");
  await p.exited;
  expect(await held(d, "orphan")).toBe(true);
  expect((await wl(["-d", d, "--done", "orphan"])).code).toBe(0);
  expect(await held(d, "orphan")).toBe(false);

  // A stranger's PID in the record of a slot that flock(1) holds: the kernel names flock(1)
  // and its command as the holders; the stranger is left alone.
  const stranger = start(["sleep", "60"]);
  writeFileSync(`${d}/odd.slot0.lock`, encodeRecord({
    pid: stranger.pid, owner: stranger.pid, uid: 0, acquiredAt: Date.now() / 1000, type: "mutex", maxHolders: 1, slot: 0,
    hostname: "h", descriptor: "odd", command: "not the holder",
  }));
  const outsider = start(["flock", `${d}/odd.slot0.lock`, "sleep", "60"]);
  await waitFor("flock(1) holds it", () => held(d, "odd"));
  expect((await wl(["-d", d, "--done", "odd"])).code).toBe(0);
  expect(await outsider.exited).not.toBe(0);
  expect(alive(stranger.pid)).toBe(true);
});

test("--done answers 0 at once when a waiter takes the slot the moment its holder lets go", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "db", "--exec", "sleep", "60"]);
  await waitFor("the holder", () => held(d, "db"));
  // A plain acquire waiting in line (for a process of ours): it holds the very file as soon
  // as the holder is gone.
  const owner = start(["sleep", "60"]);
  const waiter = start([BIN, "-d", d, "--owner", String(owner.pid), "db"]);
  await waitFor("the waiter in the kernel's queue", () => queuedInKernel(waiter.pid));
  const r = await wl(["-d", d, "--done", "db"]);
  expect(r).toMatchObject({ code: 0, stderr: "" });
  expect(r.ms).toBeLessThan(3000);
  expect(await waiter.exited).toBe(0);
  expect(await held(d, "db")).toBe(true);
});
