// What every test leaves behind, removed after it: the processes it started, then what
// `teardowns` undoes (servers, network namespaces; the last registered first), then its lock
// directories. test/setup.ts (preloaded, bunfig.toml) registers the hook: an afterEach in a
// module that test files import would only be bound to the first file that imported it.
//
// Every process a test starts leads a session of its own (helpers.ts starts them detached).
// What it starts is killed with it: every process in that session (the command of `waitlock
// --exec` has a process group of its own, in the same session) and every descendant (a
// shell on a pseudo-terminal has a session of its own), found in /proc and killed by PID. A
// holder of a plain `waitlock NAME` is neither once its waitlock has exited: it is found by
// the lock file it holds, in one of the test's lock directories.
import { chmodSync, readFileSync, readdirSync, rmSync } from "node:fs";

export const started = new Set<number>();
export const dirs: string[] = [];
export const teardowns: (() => void | Promise<void>)[] = [];
/** undone once, after the last test of the run (what several tests share, e.g. a cluster template) */
export const atTheEnd: (() => void)[] = [];

interface Proc {
  pid: number;
  parent: number;
  session: number;
  comm: string;
}

/** Every process /proc shows now (empty where there is no /proc). */
function processes(): Proc[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const procs: Proc[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid pgrp session ...: comm may contain spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      procs.push({ pid: Number(entry), parent: Number(fields[1]), session: Number(fields[3]), comm: stat.slice(stat.indexOf("(") + 1, close) });
    } catch {
      // gone meanwhile
    }
  }
  return procs;
}

function holdsIn(pid: number, dirList: string[]): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const at = argv.indexOf("__hold");
    return at >= 0 && argv.slice(at + 1).some((arg) => dirList.some((d) => arg.startsWith(`${d}/`)));
  } catch {
    return false;
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

export async function cleanUp(): Promise<void> {
  const procs = processes();
  const doomed = new Set<number>();
  for (const p of procs) if (started.has(p.session) || started.has(p.pid) || (p.comm === "waitlock" && holdsIn(p.pid, dirs))) doomed.add(p.pid);
  // Descendants, generation by generation, until none is added.
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs)
      if (!doomed.has(p.pid) && doomed.has(p.parent)) {
        doomed.add(p.pid);
        grew = true;
      }
  }
  doomed.delete(process.pid);
  for (const pid of doomed) killPid(pid);
  // Tracked processes that are not session leaders (track()), and anything /proc did not show.
  for (const pid of started) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // no such process group
    }
    killPid(pid);
  }
  started.clear();
  for (const undo of teardowns.splice(0).reverse()) await undo();
  for (const d of dirs.splice(0)) {
    // A test may have taken its own permissions away to provoke EACCES.
    try {
      chmodSync(d, 0o700);
    } catch {
      // gone already
    }
    rmSync(d, { recursive: true, force: true });
  }
}

export function cleanUpRun(): void {
  for (const undo of atTheEnd.splice(0).reverse()) undo();
}
