// Entry point of the waitlock executable.
import { main } from "./cli";
import { runHolder } from "./modes/holder";

const argv = process.argv.slice(2);
const run = argv[0] === "__hold" ? runHolder(argv.slice(1)) : main(argv);
run.then((code) => process.exit(code));
