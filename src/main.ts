// Entry point of the waitlock executable, and of the threads it waits in (offthread.ts):
// one entry keeps the executable's start-up to the entry and its core chunk.
import { main } from "./cli";

if (Bun.isMainThread) {
  const argv = process.argv.slice(2);
  const run = argv[0] === "__hold" ? import("./modes/holder").then((m) => m.runHolder(argv.slice(1))) : main(argv);
  run.then((code) => process.exit(code));
} else import("./offthread-worker");
