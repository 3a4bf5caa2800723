// The waitlock binary on a network backend (--backend URL), run as a user would, from this
// machine or a simulated host (test/hosts.ts), its output read as events. Shared by the
// tests of every network engine.
import { expect } from "bun:test";
import { BIN, run, start, waitFor } from "./helpers";
import type { Host } from "./hosts";

export interface Event {
  event: string;
  at: number;
  [k: string]: any;
}

export interface Order {
  url: string;
  name: string;
  slots?: number;
  shared?: boolean;
  timeout?: number;
  grace?: number;
  file?: string;
  rounds?: number;
  active?: string;
  holdMs?: number;
}

/** Lines the holder's command prints (stdout) and waitlock's debug lines (stderr), as events. */
function eventOf(line: string, stream: "out" | "err"): Event | undefined {
  const at = Date.now();
  if (stream === "out") {
    const [event, ...rest] = line.split(" ");
    if (event === "acquired") return { event, at, slot: Number(rest[0]), token: rest[1], command: Number(rest[2]), fd: rest[3] ? Number(rest[3]) : null };
    if (event === "counted") return { event, at, most: Number(rest[0]) };
    return event ? { event, at } : undefined;
  }
  if (/ lost: /.test(line) && !/SIGTERM to process group/.test(line)) return { event: "lost", at, message: line };
  const asked = /--done asked to (stop the command|release the lock)/.exec(line);
  if (asked) return { event: "requested", at, request: asked[1] === "stop the command" ? "stop" : "release" };
  return undefined;
}

/** A command run under the lock: says what it got, is stopped by SIGTERM saying so, then runs CMD (default: sleeps). */
const HOLD = 'echo "acquired $WAITLOCK_SLOT $WAITLOCK_TOKEN $$ ${WAITLOCK_FD-}"; trap \'echo stopped; exit 143\' TERM; echo started; [ $# -gt 0 ] || set -- sleep 1000000; "$@" & wait $!';
/** `rounds` times: take the lock, add 1 to `file`, count the holders at once in `active`, stay `holdMs`. */
const COUNT = `most=0; i=0; export SEEN="$ACTIVE.$$"; while [ $i -lt $ROUNDS ]; do i=$((i + 1))
  "$WL" "$@" --exec sh -c 'if [ -n "$ACTIVE" ]; then touch "$ACTIVE/$$"; ls "$ACTIVE" | wc -l > "$SEEN"; rm "$ACTIVE/$$"; fi
    if [ -n "$FILE" ]; then n=$(cat "$FILE"); echo $((n + 1)) > "$FILE"; fi; [ "$HOLD_MS" = 0 ] || sleep "$HOLD_MS"' || exit $?
  if [ -n "$ACTIVE" ]; then n=$(cat "$SEEN"); [ "$n" -gt "$most" ] && most=$n; fi
done; rm -f "$SEEN"; echo "counted $most"`;

/**
 * Runs the waitlock binary on the backend of `o.url` (in `host`, if given), as a user would:
 * `hold` runs CMD (default: sleeps until killed) under --exec; `count` takes the lock
 * `rounds` times from a shell loop; `done` runs --done. Its output arrives as events.
 */
export function fixture(host: Host | undefined, mode: "hold" | "count" | "done", o: Order, command: string[] = []) {
  const url = o.grace === undefined ? o.url : `${o.url}${o.url.includes("?") ? "&" : "?"}grace=${o.grace}`;
  const args = ["--backend", url, ...(o.slots ? ["-m", String(o.slots)] : []), ...(o.shared ? ["-s"] : []), ...(o.timeout === undefined ? [] : ["-t", String(o.timeout)])];
  const argv =
    mode === "hold"
      ? [BIN, "-v", ...args, o.name, "--exec", "sh", "-c", HOLD, "sh", ...command]
      : mode === "done"
        ? [BIN, "--backend", url, "--done", o.name]
        : ["sh", "-c", COUNT, "sh", ...args, o.name];
  const env = { WL: BIN, ROUNDS: String(o.rounds ?? 1), ACTIVE: o.active ?? "", FILE: o.file ?? "", HOLD_MS: String((o.holdMs ?? 0) / 1000) };
  const p = start(host ? host.run(argv) : argv, { stdout: "pipe", env });
  const events: Event[] = [];
  const errLines: string[] = [];
  const read = async (stream: ReadableStream<Uint8Array>, which: "out" | "err") => {
    let buf = "";
    for await (const chunk of stream) {
      buf += new TextDecoder().decode(chunk);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (which === "err") errLines.push(line);
        const e = eventOf(line, which);
        if (e) events.push(e);
      }
    }
  };
  const reading = Promise.all([read(p.stdout as ReadableStream<Uint8Array>, "out"), read(p.stderr as ReadableStream<Uint8Array>, "err")]);
  return {
    p,
    events,
    /** stderr without the debug lines of -v */
    stderr: () => errLines.filter((l) => !/^waitlock\[\d+\]: DEBUG:/.test(l)).map((l) => `${l}\n`).join(""),
    event: async (name: string, ms = 15_000): Promise<Event> => {
      await waitFor(`event '${name}' (stderr: ${errLines.join("\n")})`, () => events.some((e) => e.event === name), ms);
      return events.find((e) => e.event === name)!;
    },
    exited: async () => {
      const code = await p.exited;
      await reading;
      return code;
    },
    /** SIGKILL to waitlock and to its command's process group (which inherited the session) */
    killHolder: () => {
      const started = events.find((e) => e.event === "acquired");
      p.kill("SIGKILL");
      if (started) process.kill(-started.command, "SIGKILL");
    },
  };
}

/** `waitlock --backend URL --list -f json NAME` run on `host`: its waiters as [position, pid]. */
async function waitersSeenFrom(host: Host, url: string, name: string): Promise<[number, number][]> {
  const r = await run(host.run([BIN, "--backend", url, "--list", "-f", "json", name]));
  if (r.code !== 0) throw new Error(`--list on ${host.name}: ${r.code} ${r.stderr}`);
  return (JSON.parse(r.stdout) as { status: string; position: number; pid: number }[]).filter((w) => w.status === "waiting").map((w) => [w.position, w.pid]);
}

/**
 * The engine at `url` (on host db) as --list shows it from host b: a holder on host a, a
 * waiter on b, then one on a, in queue order; the one on b killed with SIGKILL drops out
 * within about a second; the other is served once the holder is killed.
 */
export async function expectWaitersOfEveryHost(hosts: Record<string, Host>, url: string): Promise<void> {
  const h = fixture(hosts.a, "hold", { url, name: "seen" });
  await h.event("acquired");
  const onB = fixture(hosts.b, "hold", { url, name: "seen" }, ["true"]);
  await waitFor("the waiter on b to be listed", async () => (await waitersSeenFrom(hosts.b!, url, "seen")).length === 1, 15_000);
  const onA = fixture(hosts.a, "hold", { url, name: "seen" }, ["true"]);
  await waitFor("the waiter on a to be listed", async () => (await waitersSeenFrom(hosts.b!, url, "seen")).length === 2, 15_000);
  expect(await waitersSeenFrom(hosts.b!, url, "seen")).toEqual([
    [1, onB.p.pid],
    [2, onA.p.pid],
  ]);
  onB.p.kill("SIGKILL");
  await onB.p.exited;
  const killed = performance.now();
  await waitFor("the killed waiter to drop out", async () => (await waitersSeenFrom(hosts.b!, url, "seen")).length === 1, 10_000);
  expect(performance.now() - killed).toBeLessThan(2_500);
  expect(await waitersSeenFrom(hosts.b!, url, "seen")).toEqual([[1, onA.p.pid]]);
  h.killHolder();
  expect(await onA.exited()).toBe(0);
  expect(await waitersSeenFrom(hosts.b!, url, "seen")).toEqual([]);
}
