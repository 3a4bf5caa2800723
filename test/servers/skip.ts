// A test that needs a missing tool, privilege or server is skipped with one line saying
// why; under .ci/run (WAITLOCK_TEST_STRICT=1) nothing may be skipped, so the reason fails the run.
// (A local helper until the suite-wide one in test/helpers.ts lands.)

export const STRICT = process.env.WAITLOCK_TEST_STRICT === "1";

const said = new Set<string>();

/**
 * True when `reason` is set: the tests of `what` are to be skipped, and the reason is
 * printed once. Under WAITLOCK_TEST_STRICT=1 a reason throws instead.
 */
export function skipping(what: string, reason: string | undefined): boolean {
  if (!reason) return false;
  if (STRICT) throw new Error(`${what}: cannot run under WAITLOCK_TEST_STRICT=1: ${reason}`);
  if (!said.has(what)) console.warn(`skipped: ${what}: ${reason}`);
  said.add(what);
  return true;
}
