// Entry point of the waitlock executable.
import { main } from "./cli";

const argv = process.argv.slice(2);
const run = argv[0] === "__hold" ? import("./modes/holder").then((m) => m.runHolder(argv.slice(1))) : main(argv);
run.then((code) => process.exit(code));
