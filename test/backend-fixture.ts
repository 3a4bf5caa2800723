// Runs test/fixtures/backend-lock.ts (a network backend driven from its own process, so
// from a simulated host too) and collects the JSON events it prints.
import { join } from "node:path";
import { start, stderrOf, waitFor } from "./helpers";
import type { Host } from "./hosts";

const FIXTURE = join(import.meta.dir, "fixtures/backend-lock.ts");

export interface Event {
  event: string;
  at: number;
  [k: string]: any;
}

/** Runs the fixture (in `host`, if given); its JSON events arrive in `events`. */
export function fixture(host: Host | undefined, mode: string, opts: object, command: string[] = []) {
  const argv = [process.execPath, FIXTURE, mode, JSON.stringify(opts), ...command];
  const p = start(host ? host.run(argv) : argv, { stdout: "pipe" });
  const events: Event[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    }
  })();
  const err = stderrOf(p);
  return {
    p,
    events,
    stderr: () => err.text,
    event: async (name: string, ms = 15_000): Promise<Event> => {
      await waitFor(`event '${name}' (stderr: ${err.text})`, () => events.some((e) => e.event === name), ms);
      return events.find((e) => e.event === name)!;
    },
    exited: async () => {
      const code = await p.exited;
      await reading;
      await err.done;
      return code;
    },
  };
}

