// waitlock --check NAME: is a slot free? Takes nothing; 2 when it cannot tell.
import { inspect, slotPath } from "../engine";
import { EXIT, WaitlockError } from "../errors";
import { grantedLocks } from "../holders";
import { debug } from "../log";

export function checkSlots(lookup: () => { dir: string | undefined; name: string; slots: number }): number {
  try {
    const { dir, name, slots } = lookup();
    // The kernel's list of locks, where there is one: looking takes no lock that could make
    // an acquirer's single try (-t 0) fail.
    const locks = grantedLocks();
    for (let k = 0; k < slots; k++) {
      const state = dir === undefined ? "absent" : inspect(slotPath(dir, name, k), false, locks).state;
      if (state !== "held") {
        debug(`'${name}' slot ${k} is ${state === "absent" ? "free (no file)" : "free"}`);
        return EXIT.OK;
      }
    }
    debug(`all ${slots} slot(s) of '${name}' are held`);
    return EXIT.BUSY;
  } catch (e) {
    if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE) throw new WaitlockError(EXIT.TIMEOUT, e.context, e.message);
    throw e;
  }
}
