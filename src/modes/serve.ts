// waitlock --serve: one process that takes, holds and releases any number of locks for its
// client (a shell's coprocess), answering requests read from stdin, one line each, on
// stdout. The protocol (man page, "COPROCESS PROTOCOL"):
//
//   request  ID VERB [VAR=VALUE...] [OPTION...] [NAME]     VERB: acquire release check list
//   answer   ID STATUS SLOT [TEXT]
//
// Fields are separated by spaces; within a field, %XX (hexadecimal) stands for a byte, so a
// value may hold a space (%20), a newline (%0A) or a percent sign (%25); a lone % is empty. VAR=VALUE fields
// are the client's WAITLOCK_* environment, which the CLI would read from its own. STATUS is
// the exit status the CLI would have had; SLOT the 0-based slot, or "-"; TEXT the error
// ("CONTEXT: MESSAGE") or, for list, the --list -f json rows on one line.
//
// Requests are taken in order; an acquire that must wait does so off this thread
// (offthread.ts) and is answered when it ends, so that answers may come out of order.
// Locks are held by this process for its client, the parent process that started it: the
// records name this process as holder and the client as owner. Everything is released when
// stdin ends (the client is gone, even if killed) or on SIGTERM, SIGINT or SIGHUP.
import { writeSync } from "node:fs";
import { getppid } from "../../ffi/libc";
import { acquire, release, type Held, type SlotRequest } from "../engine";
import { BusyError, EXIT, UsageError, WaitlockError } from "../errors";
import { resolveLockDir, type LockDir } from "../lockdir";
import { debug } from "../log";
import { canWaitOffThread, waitOffThread } from "../offthread";
import { parseOptions, type Options, type RecordForm } from "../options";
import { commandLine } from "../procinfo";
import { pollingForced } from "../waker";
import { checkSlots } from "./check";
import { describeHolder, storeRecord } from "./describe";
import { noEvents, syslogEvents, type Events } from "./events";
import { slotHeldFor } from "./hold";
import { listRows } from "./list";

interface Holding {
  held: Held;
  name: string;
  events: Events;
  since: number;
}

interface Answer {
  status: number;
  slot?: number;
  text?: string;
}

/** The compiled executable's entry starts its waiting threads too (src/main.ts); from source, the default. */
const WAIT_SCRIPT = Bun.main.startsWith("/$bunfs/") ? Bun.main : undefined;

/** How many distinct requests keep their parsed options. */
const PARSED_KEPT = 256;

const VERBS = ["acquire", "release", "check", "list"] as const;
type Verb = (typeof VERBS)[number];

/** The fields of a request line, %XX-decoded. Throws UsageError for a bad escape. */
export function requestFields(line: string): string[] {
  const fields: string[] = [];
  for (const raw of line.split(" ")) {
    if (raw === "") continue;
    try {
      // A lone "%" is an empty field.
      fields.push(raw === "%" ? "" : raw.includes("%") ? decodeURIComponent(raw) : raw);
    } catch {
      throw new UsageError(raw, "bad %XX escape in request");
    }
  }
  return fields;
}

/** One answer line: control characters in TEXT become spaces (one request, one line). */
export function answerLine(id: string, a: Answer): string {
  let text = "";
  if (a.text) {
    text = " ";
    for (const c of a.text) text += c < " " || c === "\x7f" ? " " : c;
  }
  return `${id} ${a.status} ${a.slot ?? "-"}${text}\n`;
}

const failure = (e: unknown): Answer => {
  if (e instanceof BusyError) return { status: e.exitCode };
  if (e instanceof WaitlockError) return { status: e.exitCode, text: `${e.context}: ${e.message}` };
  return { status: EXIT.SYSTEM, text: `internal error: ${e instanceof Error ? e.message : String(e)}` };
};

export class Server {
  /** held locks by "DIR/NAME" */
  private readonly holding = new Map<string, Holding>();
  private readonly dirs = new Map<string, LockDir>();
  private readonly parsed = new Map<string, { opts: Options; env: Record<string, string> }>();
  private readonly owner = getppid();
  private readonly ownerCommand = commandLine(this.owner);
  private readonly offThread = canWaitOffThread();
  /** answers being prepared that do not wait for a lock (list) */
  private readonly answering = new Set<Promise<void>>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly verbose: boolean,
  ) {}

  /** Answers one request line: at once, or (an acquire that waits) when the wait ends. */
  handle(line: string): void {
    let id = "-";
    try {
      const fields = requestFields(line);
      if (fields.length === 0) return;
      id = fields[0]!;
      const verb = fields[1] as Verb | undefined;
      if (!verb || !VERBS.includes(verb)) throw new UsageError(verb ?? "request", `unknown request (${VERBS.join(", ")})`);
      const rest = line.trimStart();
      const { opts, env } = this.parse(verb, fields, rest.slice(rest.indexOf(" ") + 1));
      // --quiet: no message but for usage errors, as on the command line.
      const fail = (e: unknown) => {
        const a = failure(e);
        return opts.quiet && a.status !== EXIT.USAGE ? { status: a.status } : a;
      };
      let answer: Answer | Promise<Answer>;
      try {
        answer = this.run(verb, opts, env);
      } catch (e) {
        return this.answer(id, fail(e));
      }
      if (!(answer instanceof Promise)) return this.answer(id, answer);
      const answered = answer.then((a) => this.answer(id, a), (e) => this.answer(id, fail(e)));
      if (verb !== "acquire") {
        this.answering.add(answered);
        answered.finally(() => this.answering.delete(answered));
      }
    } catch (e) {
      this.answer(id, failure(e));
    }
  }

  /**
   * The options of a request, as the CLI would parse them with the client's environment.
   * A client in a loop sends the same request again and again: parsed once (`text`, the
   * line after its ID, is the key).
   */
  private parse(verb: Verb, fields: string[], text: string): { opts: Options; env: Record<string, string> } {
    const known = this.parsed.get(text);
    if (known) return known;
    const env: Record<string, string> = {};
    let i = 2;
    for (; i < fields.length; i++) {
      const eq = fields[i]!.indexOf("=");
      if (!fields[i]!.startsWith("WAITLOCK_") || eq < 0) break;
      env[fields[i]!.slice(0, eq)] = fields[i]!.slice(eq + 1);
    }
    // check and list are the CLI's --check and --list; acquire and release take the plain form's options.
    const mode = verb === "check" || verb === "list" ? verb : "acquire";
    const opts = parseOptions(mode === "acquire" ? fields.slice(i) : [...fields.slice(i), `--${mode}`], env);
    if (opts.mode !== mode) throw new UsageError(`--${opts.mode}`, `not part of a request: use the request verbs (${VERBS.join(", ")})`);
    if (this.parsed.size >= PARSED_KEPT) this.parsed.clear();
    this.parsed.set(text, { opts, env });
    return { opts, env };
  }

  private answer(id: string, a: Answer): void {
    this.write(answerLine(id, a));
  }

  private run(verb: Verb, opts: Options, env: Record<string, string>): Answer | Promise<Answer> {
    if (opts.owner !== undefined) throw new UsageError("--owner", "a coprocess holds its locks for its client");
    if (opts.file !== undefined || opts.fd !== undefined) throw new UsageError(opts.file !== undefined ? "--file" : "--fd", "not through the coprocess: run waitlock itself");
    if (opts.shared && verb === "acquire") throw new UsageError("--shared", "the coprocess takes exclusive locks only; run waitlock -s itself");
    if (verb === "list") return this.list(opts);
    if (opts.name === undefined) throw new UsageError("lock name", "missing");
    if (verb === "check") return { status: checkSlots(() => ({ dir: resolveLockDir(opts.lockDir, env, false)?.path, name: opts.name!, slots: opts.slots, mode: opts.shared ? "shared" : "exclusive" })) };
    const dir = this.lockDir(opts.lockDir);
    const req: SlotRequest = { dir: dir.path, shared: dir.shared, name: opts.name, slots: opts.slots, preferred: opts.preferredSlot };
    return verb === "release" ? this.release(req) : this.acquire(req, opts);
  }

  private lockDir(path: string | undefined): LockDir {
    // Resolving costs system calls; a client in a loop names the same directory every time.
    const key = path ?? "";
    let dir = this.dirs.get(key);
    if (!dir) this.dirs.set(key, (dir = resolveLockDir(path, {})!));
    return dir;
  }

  private acquire(req: SlotRequest, opts: Options): Answer | Promise<Answer> {
    const key = `${req.dir}/${req.name}`;
    const mine = this.holding.get(key);
    if (mine) {
      debug(`'${req.name}' slot ${mine.held.slot} is already held for process ${this.owner}`);
      return { status: EXIT.OK, slot: mine.held.slot };
    }
    const events = opts.syslog ? syslogEvents(opts.facility, req.name, req.slots) : noEvents;
    const isOurs = slotHeldFor(this.owner, "exclusive");
    let outcome;
    try {
      outcome = acquire(req, 0, { isOurs });
    } catch (e) {
      if (!(e instanceof BusyError) || opts.timeout === 0) throw e;
      if (!this.offThread) throw new WaitlockError(EXIT.SYSTEM, req.name, "cannot wait off the main thread on this system; use -t 0 and retry");
      debug(`'${req.name}' is busy; waiting in a thread of its own`);
      return waitOffThread(req, { timeout: opts.timeout, verbose: this.verbose, polling: pollingForced(), script: WAIT_SCRIPT }).then((o) => this.granted(key, req, o, opts.recordForm, events));
    }
    return this.granted(key, req, outcome, opts.recordForm, events);
  }

  private granted(key: string, req: SlotRequest, outcome: { held: Held } | { alreadyHeld: number }, form: RecordForm, events: Events): Answer {
    if ("alreadyHeld" in outcome) return { status: EXIT.OK, slot: outcome.alreadyHeld };
    const mine = this.holding.get(key);
    if (mine) {
      // Two requests for one NAME, both granted: the client holds it once.
      release(outcome.held);
      return { status: EXIT.OK, slot: mine.held.slot };
    }
    const held = outcome.held;
    storeRecord(held, describeHolder(req.name, req.slots, held.slot, process.pid, this.owner, this.ownerCommand), form);
    this.holding.set(key, { held, name: req.name, events, since: Date.now() });
    events.acquired(held.slot, this.ownerCommand);
    debug(`holding '${req.name}' slot ${held.slot} for process ${this.owner}`);
    return { status: EXIT.OK, slot: held.slot };
  }

  private release(req: SlotRequest): Answer {
    const key = `${req.dir}/${req.name}`;
    const mine = this.holding.get(key);
    if (!mine) return { status: EXIT.BUSY, text: `${req.name}: not held through this coprocess` };
    this.holding.delete(key);
    this.let(mine);
    return { status: EXIT.OK, slot: mine.held.slot };
  }

  private async list(opts: Options): Promise<Answer> {
    const rows = await listRows(resolveLockDir(opts.lockDir, {}, false)?.path, { format: "json", all: opts.all, staleOnly: opts.staleOnly, name: opts.name });
    return { status: EXIT.OK, text: JSON.stringify(rows) };
  }

  private let(h: Holding): void {
    release(h.held);
    h.events.released((Date.now() - h.since) / 1000);
    debug(`released '${h.name}' slot ${h.held.slot}`);
  }

  /** Waits for the answers that are being prepared, but not for any lock. */
  async settle(): Promise<void> {
    await Promise.all(this.answering);
  }

  /** Releases every lock held (the client is gone, or we were told to stop). */
  releaseAll(): void {
    for (const h of this.holding.values()) this.let(h);
    this.holding.clear();
  }
}

/**
 * Runs the coprocess until stdin ends or a signal stops it; exit status 0 (4 when stdout
 * cannot be written: the client is gone).
 */
export async function serve(verbose: boolean): Promise<number> {
  // A long-lived process: let the JIT compile the request path (package.json holds it back
  // for the one-shot modes).
  Bun.unsafe.setJITPolicy(1);
  const stop = (why: string, status: number = EXIT.OK) => () => {
    debug(`${why}: releasing every lock`);
    server.releaseAll();
    process.exit(status);
  };
  const server = new Server(
    (line) => {
      try {
        writeSync(1, line);
      } catch {
        stop("cannot answer (the client is gone)", EXIT.SYSTEM)();
      }
    },
    verbose,
  );
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, stop(signal));
  debug(`serving requests for process ${getppid()}`);
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const chunk of Bun.stdin.stream()) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        server.handle(line);
      }
    }
    if (pending.trim()) server.handle(pending);
    await server.settle();
  } catch (e) {
    debug(`cannot go on serving: ${e instanceof Error ? e.message : String(e)}`);
    server.releaseAll();
    return EXIT.SYSTEM;
  }
  stop("end of input")();
  return EXIT.OK;
}
