// Entry point of the waitlock executable, and of the threads it waits in (offthread.ts) or
// watches a process's exit in (procinfo.ts whenExits, started with the argument
// "__exitwatch"): one entry keeps the executable's start-up to the entry and its core chunk.
import { main } from "./cli";

/** The detached holder of a plain acquire on a network engine (src/modes/lease-holder.ts). */
async function leaseHolder(order: string): Promise<number> {
  const [{ connectBackend }, { runLeaseHolder }] = await Promise.all([import("./backends"), import("./modes/lease-holder")]);
  return runLeaseHolder(await connectBackend(process.env.WAITLOCK_BACKEND!), order);
}

if (Bun.isMainThread) {
  const argv = process.argv.slice(2);
  const run =
    argv[0] === "__hold"
      ? import("./modes/holder").then((m) => m.runHolder(argv.slice(1)))
      : argv[0] === "__lease"
        ? leaseHolder(argv[1]!)
        : main(argv);
  run.then((code) => process.exit(code));
} else if (process.argv.at(-1) === "__exitwatch") import("./exitwatch-worker");
else import("./offthread-worker");
