// Exclusion and fairness at flock(1)'s standard: a descendant that inherited the lock keeps
// it, waiters are served in arrival order, the kernel names the holders (also inside a PID
// namespace), a reused PID is not a live owner, and every user meets the same default lock
// directory.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { BIN, alive, held, inotifyWatches, listJson, lockDir, queuedInKernel, run, sh, start, startSh, waitFor, wl } from "./helpers";
import { mountNamespace, needs, pidNamespace, root, tool } from "./needs";

/** Why a test that runs commands as other users (setpriv) cannot run here, or undefined. */
const otherUsers = () => root() ?? tool("setpriv");

describe("a descendant that inherited the locked descriptor keeps the lock, as under flock(1)", () => {
  test("busy while the orphan lives, free when it exits", async () => {
    const d = lockDir();
    const r = await sh(`"$WL" -d "$D" s --exec sh -c 'sleep 30 >/dev/null 2>&1 & echo $! > "$D/orphan"'`, d);
    expect(r.code).toBe(0);
    const orphan = Number(readFileSync(`${d}/orphan`, "utf8"));
    const second = await wl(["-d", d, "-t", "0", "s", "--exec", "echo", "second"]);
    expect(second).toMatchObject({ code: 1, stdout: "" });
    process.kill(orphan, "SIGKILL");
    await waitFor("the orphan to exit", () => !alive(orphan));
    expect(await wl(["-d", d, "-t", "0", "s", "--exec", "echo", "second"])).toMatchObject({ code: 0, stdout: "second\n" });
  });

  test("--list shows the orphan as the holder, and --done stops it", async () => {
    const d = lockDir();
    await sh(`"$WL" -d "$D" s --exec sh -c 'sleep 30 >/dev/null 2>&1 & echo $! > "$D/orphan"'`, d);
    const orphan = Number(readFileSync(`${d}/orphan`, "utf8"));
    const rows = await listJson(d);
    expect(rows.map((r) => [r.descriptor, r.pid, r.command])).toEqual([["s", orphan, "sleep 30"]]);
    expect((await wl(["-d", d, "--done", "s"])).code).toBe(0);
    await waitFor("the orphan to be stopped", () => !alive(orphan));
    expect(await held(d, "s")).toBe(false);
  });

  test("a kill storm over critical sections that fork loses no increment", async () => {
    const d = lockDir();
    writeFileSync(`${d}/counter`, "0\n");
    // The command returns at once; its background child does the increment, holding the
    // lock through the descriptor it inherited until it exits.
    const section = `( n=$(cat "$D/counter"); sleep 0.002; echo $((n + 1)) > "$D/counter"; echo x >> "$D/ran" ) &`;
    const worker = `i=0; while [ $i -lt 30 ]; do "$WL" -d "$D" storm --exec sh -c '${section}' & echo $! >> "$D/pids"; wait $!; i=$((i + 1)); done`;
    const workers = Array.from({ length: 4 }, () => startSh(worker, d));
    let killed = 0;
    const storm = (async () => {
      while (workers.some((w) => w.exitCode === null)) {
        const pids = existsSync(`${d}/pids`) ? readFileSync(`${d}/pids`, "utf8").trim().split("\n").map(Number) : [];
        const victim = pids[Math.floor(Math.random() * pids.length)];
        if (victim && alive(victim) && readFileSync(`/proc/${victim}/cmdline`, "utf8").includes("storm")) {
          try {
            process.kill(victim, "SIGKILL");
            killed++;
          } catch {
            // exited meanwhile
          }
        }
        await Bun.sleep(3);
      }
    })();
    await Promise.all(workers.map((w) => w.exited));
    await storm;
    // The last background increments finish once their waitlock is gone.
    await waitFor("the last section", async () => !(await held(d, "storm")));
    const ran = readFileSync(`${d}/ran`, "utf8").split("\n").length - 1;
    expect(killed).toBeGreaterThan(0);
    expect(Number(readFileSync(`${d}/counter`, "utf8"))).toBe(ran);
  }, 60_000);
});

/**
 * One round: `holders` processes hold every slot; five waiters arrive one after another,
 * each starting only once the one before sleeps in the kernel (in the queue, or as its
 * head on inotify watches); then one holder lets go. The order they ran in.
 */
async function fifoRound(slots: number): Promise<string> {
  const d = lockDir();
  const m = ["-m", String(slots)];
  const holders = Array.from({ length: slots }, (_, k) => startSh(`exec "$WL" -d "$D" ${m.join(" ")} f --exec sh -c 'touch "$D/h${k}"; read -r _'`, d));
  await waitFor("the holders", () => holders.every((_, k) => existsSync(`${d}/h${k}`)));
  const waiters = [];
  for (let i = 1; i <= 5; i++) {
    const w = start([BIN, "-d", d, ...m, "f", "--exec", "sh", "-c", `echo ${i} >> "$0/order"`, d]);
    await waitFor(`waiter ${i} asleep`, () => queuedInKernel(w.pid) || (slots > 1 && inotifyWatches(w.pid) >= slots));
    waiters.push(w);
  }
  // The other holders keep their slots: one slot passes from waiter to waiter.
  holders[0]!.stdin!.end();
  for (const w of waiters) expect(await w.exited).toBe(0);
  return readFileSync(`${d}/order`, "utf8").replaceAll("\n", "");
}

describe("waiters are served in arrival order", () => {
  for (const slots of [1, 2]) {
    test(`${slots === 1 ? "a mutex" : `a ${slots}-slot semaphore`}: in order in at least 19 of 20 rounds`, async () => {
      const orders: string[] = [];
      for (let round = 0; round < 20; round++) orders.push(await fifoRound(slots));
      expect({ orders, inOrder: orders.filter((o) => o === "12345").length >= 19 }).toMatchObject({ inOrder: true });
    }, 60_000);
  }

  test("a waiter arriving while the lock passes from one waiter to the next never overtakes those queued before it", async () => {
    // The kernel alone does not keep this: a let-go flock(2) wakes its waiters to try again,
    // and a newcomer asking in that instant is served first. 30 waiters, each started once
    // the one before is asleep, while the lock passes along the queue every 50 ms: longer
    // than a waiter takes to start on a busy machine, so that the queue never runs dry (a
    // waiter served at once is never seen asleep; with 20 ms it ran dry under a full suite).
    for (let round = 0; round < 4; round++) {
      const d = lockDir();
      const holder = startSh(`exec "$WL" -d "$D" h --exec sh -c 'touch "$D/held"; read -r _'`, d);
      await waitFor("the holder", () => existsSync(`${d}/held`));
      const waiters = [];
      for (let i = 0; i < 30; i++) {
        const w = start([BIN, "-d", d, "h", "--exec", "sh", "-c", `echo ${i} >> "$0/order"; sleep 0.05`, d]);
        await waitFor(`waiter ${i} asleep`, () => queuedInKernel(w.pid));
        waiters.push(w);
        if (i === 5) holder.stdin!.end();
      }
      for (const w of waiters) expect(await w.exited).toBe(0);
      expect(readFileSync(`${d}/order`, "utf8")).toBe(Array.from({ length: 30 }, (_, i) => `${i}\n`).join(""));
    }
  }, 60_000);

  test("a waiter killed while queued never blocks the queue", async () => {
    const d = lockDir();
    const holder = startSh(`exec "$WL" -d "$D" k --exec sh -c 'read -r _'`, d);
    await waitFor("the holder", () => held(d, "k"));
    const doomed = start([BIN, "-d", d, "k", "--exec", "true"]);
    await waitFor("the doomed waiter queued", () => queuedInKernel(doomed.pid));
    const next = start([BIN, "-d", d, "k", "--exec", "true"]);
    await waitFor("the next waiter queued", () => queuedInKernel(next.pid));
    doomed.kill("SIGKILL");
    await doomed.exited;
    holder.stdin!.end();
    expect(await next.exited).toBe(0);
  });
  test("a waiter that gives up last removes the slot file a holder left for the queue", async () => {
    // A holder that lets go while others are queued leaves its slot file for the head of
    // the queue; if they all give up instead, the last to leave removes it. Set up as such
    // a moment leaves it: the slot file free, the entry file there, and a waiter ahead in
    // the queue (flock(1) holding that waiter's queue node) for as long as the test needs.
    const d = lockDir();
    writeFileSync(`${d}/g.slot0.lock`, "");
    writeFileSync(`${d}/g.entry.lock`, "");
    const ahead = start(["flock", `${d}/g.q00000000.lock`, "sh", "-c", 'touch "$0/ahead"; exec cat', d], { stdin: "pipe" });
    await waitFor("the waiter ahead", () => existsSync(`${d}/ahead`));
    const r = await wl(["-d", d, "-t", "0.3", "g", "--exec", "true"]);
    expect(r.code).toBe(2);
    expect(readdirSync(d).filter((f) => f.startsWith("g.") && f !== "g.q00000000.lock")).toEqual([]);
    ahead.stdin!.end();
    expect(await ahead.exited).toBe(0);
  });
});

describe("the kernel names the holder", () => {
  needs(mountNamespace())("with a full disk no record is written: the same owner still gets 0 at once, and --list shows the holder", async () => {
    const d = lockDir();
    mkdirSync(`${d}/full`);
    // A mount namespace of its own: the tmpfs goes with it.
    const r = await run(["unshare", "-m", "sh", "-c", `
      mount -t tmpfs -o size=16k tmpfs "$D/full" || exit 10
      dd if=/dev/zero of="$D/full/filler" bs=4k 2>/dev/null
      "$WL" -d "$D/full" job || exit 9
      "$WL" -d "$D/full" -t 0 job || exit 8
      echo $$ > "$D/owner"
      "$WL" -d "$D/full" --list -f json`], { env: { WL: BIN, D: d } });
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { descriptor: string; status: string; owner: number; command: string; format: string | null }[];
    expect(rows.map((row) => [row.descriptor, row.status, row.format, row.owner])).toEqual([["job", "active", null, Number(readFileSync(`${d}/owner`, "utf8"))]]);
    expect(rows[0]!.command).toStartWith("sh -c");
  });

  needs(mountNamespace())("with no inodes left for the queue's files a waiter still waits (unqueued, with one warning) and gets the lock", async () => {
    const d = lockDir();
    mkdirSync(`${d}/full`);
    const r = await run(["unshare", "-m", "sh", "-c", `
      await_file() { i=0; until [ $1 "$2" ]; do i=$((i+1)); [ $i -gt 500 ] && exit 6; sleep 0.01; done; }
      mount -t tmpfs -o size=64k,nr_inodes=8 tmpfs "$D/full" || exit 10
      n=0; while touch "$D/full/f$n" 2>/dev/null; do n=$((n+1)); done
      rm "$D/full/f0"
      "$WL" -d "$D/full" job --exec sh -c 'touch "$0/held"; until [ -e "$0/go" ]; do sleep 0.01; done' "$D" &
      await_file -e "$D/held"
      "$WL" -d "$D/full" job --exec echo second 2> "$D/warning" &
      waiter=$!
      await_file -s "$D/warning"
      touch "$D/go"
      wait $waiter || exit 9
      wait
      ls "$D/full" | grep -v '^f'
      true`], { env: { WL: BIN, D: d } });
    expect(r).toMatchObject({ code: 0, stdout: "second\n" });
    expect(readFileSync(`${d}/warning`, "utf8")).toMatch(/^waitlock: warning: .*full\/job: no room in the lock directory for the queue's files: waiting without the queue, so arrival order is not kept\n$/);
  });

  needs(pidNamespace())("a holder that polls its owner is not fooled by a reused PID", async () => {
    const d = lockDir();
    // A PID namespace of its own, where the next PID can be chosen (ns_last_pid).
    const r = await run(["unshare", "-p", "-f", "--mount-proc", "sh", "-c", `
      sleep 1000 & owner=$!
      WAITLOCK_POLL=1 "$WL" -d "$D" --owner $owner reuse || exit 9
      "$WL" -d "$D" -t 0 reuse --exec true && exit 8
      kill -9 $owner; wait $owner
      echo $((owner - 1)) > /proc/sys/kernel/ns_last_pid
      sleep 1000 & again=$!
      [ "$again" = "$owner" ] || { echo "PID $owner was not reused ($again)"; exit 7; }
      "$WL" -d "$D" -t 3 reuse --exec echo released
      status=$?
      kill $again
      exit $status`], { env: { WL: BIN, D: d }, deadlineMs: 10_000 });
    expect(r).toMatchObject({ code: 0, stdout: "released\n" });
  }, 15_000);

  // As the backend contract's case for a plain acquire, through the shell functions'
  // coprocess. In a PID namespace of its own, whose init adopts the coprocess: otherwise its
  // process group, orphaned by the shell's death while stopped, would get SIGHUP and let go.
  needs(pidNamespace(), tool("bash"))("the same-owner shortcut is not fooled by a reused PID while the coprocess has not yet seen its shell exit", async () => {
    const d = lockDir();
    const r = await run(["unshare", "-p", "-f", "--mount-proc", "sh", "-c", `
      bash -c 'eval "$("$WL" --shell-init bash)"; export WAITLOCK_DIR="$D"; waitlock_acquire m || exit 9; touch "$D/held"; exec sleep 1000' & owner=$!
      i=0; until [ -e "$D/held" ]; do i=$((i+1)); [ $i -gt 500 ] && exit 6; sleep 0.01; done
      h=$("$WL" -d "$D" --list -f csv m | sed -n 2p | cut -d, -f2); [ -n "$h" ] || exit 5
      kill -STOP $h
      kill -9 $owner; wait $owner
      echo $((owner - 1)) > /proc/sys/kernel/ns_last_pid
      sh -c '"$WL" -d "$D" -t 0 m; echo "$$ $?" > "$D/again"'
      read -r again status < "$D/again"
      [ "$again" = "$owner" ] || { echo "PID $owner was not reused ($again)"; exit 7; }
      echo "asked under the shell's PID: $status"
      kill -CONT $h
      "$WL" -d "$D" -t 3 m --exec echo released`], { env: { WL: BIN, D: d }, deadlineMs: 10_000 });
    expect(r).toMatchObject({ code: 0, stdout: "asked under the shell's PID: 1\nreleased\n" });
  }, 15_000);
});

describe("inside a PID namespace of its own (a container), a plain acquire's lock is seen", () => {
  // There /proc/locks leaves out a lock whose taker (the waitlock that exited after handing
  // its descriptor to a holder process) the namespace cannot name.
  /** Runs `inner` as a shell under the PID 1 of a PID namespace of its own; its output. */
  const inNamespace = async (inner: string) => {
    const r = await run(["unshare", "-p", "-f", "--mount-proc", "sh", "-c", 'sh -c "$INNER"'], { env: { WL: BIN, D: lockDir(), INNER: inner }, deadlineMs: 15_000 });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    return r.stdout;
  };
  /** The "what=STATUS" lines of `out`: one object, so that a failure shows every answer. */
  const statuses = (out: string) => Object.fromEntries([...out.matchAll(/^(.+)=(\d+)$/gm)].map((m) => [m[1], Number(m[2])]));

  needs(pidNamespace())("--check, --list, --done and the same owner's second acquire", async () => {
    const out = await inNamespace(`
      "$WL" -d "$D" m || exit 9
      "$WL" -d "$D" --check m; echo "check=$?"
      "$WL" -d "$D" --list
      "$WL" -d "$D" -t 0 m; echo "same owner=$?"
      sh -c '"$WL" -d "$D" -t 0 m'; echo "other owner=$?"
      "$WL" -q -d "$D" --done m; echo "done=$?"
      "$WL" -d "$D" --check m; echo "check after done=$?"`);
    const listed = /^m +0\/1 +exclusive +\d+ +\d+ /m.test(out);
    expect({ ...statuses(out), listed }).toEqual({ check: 1, listed: true, "same owner": 0, "other owner": 1, done: 0, "check after done": 0 });
  }, 20_000);

  needs(pidNamespace())("a semaphore: the same owner holds one slot, and --check sees both held", async () => {
    const out = await inNamespace(`
      "$WL" -d "$D" -m 2 s && "$WL" -d "$D" -m 2 -t 0 s || exit 9
      sh -c '"$WL" -d "$D" -m 2 -t 0 s; echo "other owner=$?"; "$WL" -d "$D" -m 2 --check s; echo "check when full=$?"'
      "$WL" -d "$D" -m 2 --check s; echo "check=$?"`);
    expect(statuses(out)).toEqual({ "other owner": 0, "check when full": 1, check: 0 });
  }, 20_000);

  needs(pidNamespace(), otherUsers())("another user's lock, whose holder this user may not look at", async () => {
    const out = await inNamespace(`
      chmod 1777 "$D"
      "$WL" -d "$D" m || exit 9
      setpriv --reuid=65534 --regid=65534 --clear-groups "$WL" -d "$D" --check m; echo "check by another user=$?"
      setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '"$WL" -d "$D" -t 0 m'; echo "acquire by another user=$?"`);
    expect(statuses(out)).toEqual({ "check by another user": 1, "acquire by another user": 1 });
  }, 20_000);

  needs(pidNamespace())("readers of a NAME, and a --file lock", async () => {
    const out = await inNamespace(`
      : > "$D/file"
      "$WL" -d "$D" -s r && "$WL" -d "$D" -s -t 0 r; echo "same reader=$?"
      "$WL" -d "$D" --check r; echo "check exclusive=$?"
      "$WL" -d "$D" -s --check r; echo "check shared=$?"
      "$WL" -d "$D" --file "$D/file" && "$WL" -d "$D" -t 0 --file "$D/file"; echo "same file=$?"
      "$WL" -d "$D" --check --file "$D/file"; echo "check file=$?"
      "$WL" -q -d "$D" --done --file "$D/file"; echo "done file=$?"`);
    expect(statuses(out)).toEqual({ "same reader": 0, "check exclusive": 1, "check shared": 0, "same file": 0, "check file": 1, "done file": 0 });
  }, 20_000);
});

describe("one default lock directory for every user", () => {
  /** Runs `script` in a mount namespace whose /run and /tmp are fresh, as after a boot. */
  const freshBoot = (script: string) =>
    run(["unshare", "-m", "sh", "-c", `mount -t tmpfs -o mode=755 tmpfs /run && mount -t tmpfs -o mode=1777 tmpfs /tmp && ${script}`], { env: { WL: BIN }, deadlineMs: 15_000 });
  const asNobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";

  needs(mountNamespace(), otherUsers())("on a fresh boot a user's lock and root's lock are one lock, whoever comes first", async () => {
    const r = await freshBoot(`
      mkdir -m 1777 /run/lock
      ${asNobody} "$WL" -v --list 2>&1 | grep 'lock directory'
      "$WL" -v --list 2>&1 | grep 'lock directory'
      ${asNobody} sh -c '"$WL" shared || exit 9; exec sleep 30' & user=$!
      i=0; until "$WL" --check shared; [ $? = 1 ]; do i=$((i+1)); [ $i -gt 500 ] && exit 6; sleep 0.01; done
      "$WL" -t 0 shared --exec true; echo "root while the user holds it: $?"
      kill $user; wait $user
      "$WL" -t 2 shared --exec true; echo "root after: $?"
      ls -A /run/lock`);
    expect(r.code).toBe(0);
    const dirs = r.stdout.split("\n").filter((l) => l.includes("lock directory")).map((l) => l.replace(/^.*lock directory /, ""));
    expect(dirs).toEqual(["/run/lock", "/run/lock"]);
    expect(r.stdout).toContain("root while the user holds it: 1");
    expect(r.stdout).toContain("root after: 0");
  }, 20_000);

  needs(mountNamespace(), otherUsers())("without /run/lock every user falls to the same next default; read-only modes create nothing", async () => {
    const r = await freshBoot(`
      ${asNobody} "$WL" -v --list 2>&1 | grep 'lock directory'
      "$WL" -v --check x 2>&1 | grep 'lock directory'
      "$WL" -v --done x 2>&1 | grep 'lock directory'
      ls -A /tmp; ls -A /run | grep -vx mount`);
    const dirs = r.stdout.split("\n").filter((l) => l.includes("lock directory")).map((l) => l.replace(/^.*lock directory /, ""));
    // /var/lock is a link to /run/lock here or absent: either way the next is /tmp, for all.
    expect(new Set(dirs).size).toBe(1);
    expect(r.stdout.split("\n").filter((l) => l && !l.includes("lock directory"))).toEqual([]);
  });

  needs(mountNamespace(), otherUsers())("a waitlock directory made by an ordinary user is ignored by everyone; root's (make install) is used by everyone", async () => {
    const r = await freshBoot(`
      mkdir -m 1777 /run/lock
      ${asNobody} mkdir -m 1777 /run/lock/waitlock
      ${asNobody} "$WL" -v --list 2>&1 | grep 'lock directory'
      "$WL" -v --list 2>&1 | grep 'lock directory'
      rmdir /run/lock/waitlock && install -d -m 1777 /run/lock/waitlock
      ${asNobody} "$WL" -v --list 2>&1 | grep 'lock directory'
      "$WL" -v --list 2>&1 | grep 'lock directory'`);
    const dirs = r.stdout.split("\n").filter((l) => l.includes("lock directory")).map((l) => l.replace(/^.*lock directory /, ""));
    expect(dirs).toEqual(["/run/lock", "/run/lock", "/run/lock/waitlock", "/run/lock/waitlock"]);
  });
});

describe("two users in one shared directory", () => {
  const asNobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";

  needs(otherUsers())("an ordinary user cannot name root's process as --owner (3), nor have root's --done stop it", async () => {
    const d = lockDir();
    chmodSync(d, 0o1777);
    const victim = start(["sleep", "60"]);
    const refused = await sh(`${asNobody} "$WL" -d "$D" --owner ${victim.pid} job`, d);
    expect(refused).toMatchObject({ code: 3 });
    expect(refused.stderr).toContain(`process ${victim.pid} belongs to another user`);
    // A holder process made by hand, as the user could, claiming root's process as owner.
    const holder = start(["sh", "-c", `exec ${asNobody} sh -c 'exec 3<>"$0/job.slot0.lock"; flock 3; exec "$1" __hold "$2" "" poll 0 "" job' "$0" "$1" "$2"`, d, BIN, String(victim.pid)]);
    await waitFor("the hand-made holder", () => held(d, "job"));
    expect((await wl(["-d", d, "--done", "job"])).code).toBe(0);
    expect(await holder.exited).toBe(0);
    expect(alive(victim.pid)).toBe(true);
  });

  const protectedRegular = "/proc/sys/fs/protected_regular";
  needs(otherUsers(), existsSync(protectedRegular) ? undefined : "no fs.protected_regular in this kernel")("with fs.protected_regular=1 (the usual default) each locks the other's files, and no stale record is left", async () => {
    const d = lockDir();
    chmodSync(d, 0o755);
    mkdirSync(`${d}/shared`, { mode: 0o1777 });
    chmodSync(`${d}/shared`, 0o1777);
    const before = readFileSync(protectedRegular, "utf8").trim();
    writeFileSync(protectedRegular, "1");
    try {
      const as = (uid: number) => `setpriv --reuid=${uid} --regid=${uid} --clear-groups`;
      // nobody makes the files; uid 1234 waits for and then takes nobody's lock, and back.
      const r = await sh(`
        ${as(65534)} "$WL" -d "$D/shared" x --exec sleep 0.3 &
        i=0; until [ -e "$D/shared/x.slot0.lock" ]; do i=$((i+1)); [ $i -gt 500 ] && exit 6; sleep 0.01; done
        ${as(1234)} "$WL" -d "$D/shared" -t 5 x --exec echo second || exit 7
        wait
        ${as(65534)} "$WL" -d "$D/shared" -t 5 x --exec echo third || exit 8
        "$WL" -d "$D/shared" --list --all -f csv`, d);
      expect(r.stdout.split("\n").filter(Boolean)).toEqual(["second", "third", "descriptor,pid,slot,user,acquired,status,command"]);
      expect(r.code).toBe(0);
    } finally {
      writeFileSync(protectedRegular, before);
    }
  }, 20_000);
});

