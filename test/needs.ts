// Tests that need a tool, a privilege or a kernel feature this machine may lack: skipped with
// a one-line reason printed in the run, or failed under WAITLOCK_TEST_STRICT=1 (.ci/run).
import { test } from "bun:test";

/**
 * Set by .ci/run: every test must run. A test whose tool or privilege is missing then fails
 * with the reason instead of being skipped.
 */
export const STRICT = process.env.WAITLOCK_TEST_STRICT === "1";

type TestFn = (name: string, fn: () => void | Promise<unknown>, timeout?: number) => void;

/**
 * `test`, when nothing is missing; else a test that is skipped with a one-line reason
 * printed in the run (`skip: NAME: REASON`), or under STRICT fails with that reason.
 * Each argument is a reason the test cannot run here, or undefined: `tool()`, `root()` ...
 *
 *   needs(tool("zsh"))("zsh completes ...", async () => { ... });
 */
export function needs(...missing: (string | undefined)[]): TestFn {
  const reason = [...new Set(missing.filter((r) => r !== undefined))].join("; ");
  if (!reason) return (name, fn, timeout) => test(name, fn, timeout);
  if (STRICT)
    return (name, _fn, timeout) =>
      test(name, () => {
        throw new Error(`cannot run here: ${reason} (WAITLOCK_TEST_STRICT=1: nothing may be skipped)`);
      }, timeout);
  return (name, fn, timeout) => {
    console.warn(`skip: ${name}: ${reason}`);
    test.skip(name, fn, timeout);
  };
}

/** Why a test that runs `name` cannot run here (not on PATH), or undefined. */
export const tool = (name: string): string | undefined => (Bun.which(name) ? undefined : `${name} is not installed (not on PATH)`);

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Why a test that needs root cannot run here, or undefined. */
export const root = (): string | undefined => (isRoot() ? undefined : `needs root (runs as uid ${process.getuid?.()})`);

/** Why a Linux-only test cannot run here, or undefined. */
export const linux = (): string | undefined => (process.platform === "linux" ? undefined : `Linux only (this is ${process.platform})`);

let mountNamespaces: string | undefined | null = null;

/** Why a test that mounts file systems in a mount namespace of its own (unshare -m) cannot run here, or undefined. */
export function mountNamespace(): string | undefined {
  if (mountNamespaces === null) {
    mountNamespaces = root() ?? tool("unshare") ?? tool("mount");
    if (mountNamespaces === undefined && Bun.spawnSync(["unshare", "-m", "true"]).exitCode !== 0) mountNamespaces = "unshare -m is not permitted here";
  }
  return mountNamespaces;
}

let pidNamespaces: string | undefined | null = null;

/** Why a test that runs in a PID namespace of its own (unshare -p, with its own /proc) cannot run here, or undefined. */
export function pidNamespace(): string | undefined {
  if (pidNamespaces === null) {
    pidNamespaces = mountNamespace();
    if (pidNamespaces === undefined && Bun.spawnSync(["unshare", "-p", "-f", "--mount-proc", "true"]).exitCode !== 0) pidNamespaces = "unshare -p is not permitted here";
  }
  return pidNamespaces;
}
