// The detached process behind `waitlock NAME`: it owns the locked descriptor (fd 3) and
// lets go when the owner exits (fd 4 is the owner's pidfd where there is one) or when it
// is told to with SIGTERM, SIGINT or SIGHUP.
import { pollReadable, E } from "../../ffi/libc";
import { release } from "../engine";
import { alive } from "../procinfo";
import { noEvents, syslogEvents } from "./events";

const LOCK_FD = 3;
const OWNER_FD = 4;

export async function runHolder(args: string[]): Promise<number> {
  const [path = "", name = "", ownerArg = "", watch = "", acquiredArg = "", facility = ""] = args;
  const owner = Number(ownerArg);
  const acquiredAt = Number(acquiredArg);
  const events = facility ? syslogEvents(facility, name, 1) : noEvents;
  let done = false;
  const finish = () => {
    if (!done) {
      done = true;
      release({ fd: LOCK_FD, path });
      events.released((Date.now() - acquiredAt) / 1000);
    }
    process.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, finish);

  if (watch === "pidfd") {
    for (;;) {
      const r = pollReadable([OWNER_FD], -1);
      if (r !== -E.EINTR) break;
      // A signal cut the wait short: let its handler run.
      await Bun.sleep(0);
    }
  } else {
    while (alive(owner)) await Bun.sleep(250);
  }
  finish();
  return 0;
}
