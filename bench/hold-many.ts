// Holds N slots of one lock through the library, for the `--list` benchmark; prints
// "ready", then holds until stdin closes.
import { acquire } from "../src/index";

const [dir, name, count] = [process.argv[2]!, process.argv[3]!, Number(process.argv[4])];
const locks = Array.from({ length: count }, (_, k) => acquire(name, { lockDir: dir, slots: count, preferredSlot: k, command: `bench holder ${k}` }));
console.log("ready");
for await (const _ of Bun.stdin.stream());
for (const lock of locks) lock.release();
