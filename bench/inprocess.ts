// In-process latencies of the library API, measured with mitata; prints JSON stats (ns).
import { measure } from "mitata";
import { acquire, tryAcquire } from "../src/index";

const dir = process.argv[2]!;
const busyName = process.argv[3];
const pick = (s: { p25: number; p50: number; p75: number; min: number; max: number; samples: number[] }) => ({
  p25: s.p25, median: s.p50, p75: s.p75, min: s.min, max: s.max, samples: s.samples.length,
});
const results: Record<string, ReturnType<typeof pick>> = {};
results["acquire+release (with record)"] = pick(await measure(() => acquire("inproc", { lockDir: dir }).release()));
results["acquire+release (record: false)"] = pick(await measure(() => acquire("inproc", { lockDir: dir, record: false }).release()));
results["acquire+release, 4-slot semaphore"] = pick(await measure(() => acquire("inproc4", { lockDir: dir, slots: 4 }).release()));
if (busyName) results["tryAcquire of a held lock (busy)"] = pick(await measure(() => tryAcquire(busyName, { lockDir: dir })));
console.log(JSON.stringify(results));
