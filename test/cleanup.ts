// What every test leaves behind, removed after it: the process groups it started (killed by
// their leaders' PIDs), then what `teardowns` undoes (servers, network namespaces; the last
// registered first), then its lock directories. test/setup.ts (preloaded, bunfig.toml)
// registers the hook: an afterEach in a module that test files import would only be bound
// to the first file that imported it.
import { rmSync } from "node:fs";

export const started = new Set<number>();
export const dirs: string[] = [];
export const teardowns: (() => void | Promise<void>)[] = [];
/** undone once, after the last test of the run (what several tests share, e.g. a cluster template) */
export const atTheEnd: (() => void)[] = [];

export async function cleanUp(): Promise<void> {
  for (const pid of started) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  started.clear();
  for (const undo of teardowns.splice(0).reverse()) await undo();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function cleanUpRun(): void {
  for (const undo of atTheEnd.splice(0).reverse()) undo();
}
