// What every test leaves behind, removed after it: the process groups it started (killed by
// their leaders' PIDs) and its lock directories. test/setup.ts (preloaded, bunfig.toml)
// registers the hook: an afterEach in a module that test files import would only be bound
// to the first file that imported it.
import { rmSync } from "node:fs";

export const started = new Set<number>();
export const dirs: string[] = [];

export function cleanUp(): void {
  for (const pid of started) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  started.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
