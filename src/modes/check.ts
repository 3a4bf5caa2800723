// waitlock --check NAME: is a slot free? Takes nothing; 2 when it cannot tell.
import { inspect, slotPath } from "../engine";
import { EXIT, WaitlockError } from "../errors";
import { debug } from "../log";

export function checkSlots(lookup: () => { dir: string; name: string; slots: number }): number {
  try {
    const { dir, name, slots } = lookup();
    for (let k = 0; k < slots; k++) {
      const state = inspect(slotPath(dir, name, k)).state;
      if (state !== "held") {
        debug(`'${name}' slot ${k} is ${state === "absent" ? "free (no file)" : "free"}`);
        return EXIT.OK;
      }
    }
    debug(`all ${slots} slot(s) of '${name}' are held`);
    return EXIT.BUSY;
  } catch (e) {
    // Out of descriptors is 75 in every mode: retrying can succeed, and it is no answer.
    if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE && e.exitCode !== EXIT.TEMPFAIL) throw new WaitlockError(EXIT.TIMEOUT, e.context, e.message);
    throw e;
  }
}
