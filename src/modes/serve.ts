// waitlock --serve: one process that takes, holds and releases any number of locks for its
// client (a shell's coprocess), answering requests read from stdin, one line each, on
// stdout. The protocol (man page, "COPROCESS PROTOCOL"):
//
//   request  ID VERB [VAR=VALUE...] [OPTION...] [NAME]     VERB: acquire release check list
//            ID cancel TARGET                              withdraws TARGET's waiting acquire
//   answer   ID STATUS SLOT [TEXT]                         ID as the request wrote it
//
// Fields are separated by spaces; within a field, %XX (hexadecimal) stands for a byte, so a
// value may hold a space (%20), a newline (%0A) or a percent sign (%25); a lone % is empty. VAR=VALUE fields
// are the client's WAITLOCK_* environment, which the CLI would read from its own. STATUS is
// the exit status the CLI would have had; SLOT the 0-based slot, or "-"; TEXT the error
// ("CONTEXT: MESSAGE") or, for list, the --list -f json rows on one line.
//
// Requests are taken in order; an acquire that must wait does so off this thread
// (offthread.ts) and is answered when it ends, so that answers may come out of order.
// Locks are held by this process for its owner: the client, the parent process that
// started it, or `--owner PID` (the shell functions' shell): the records name this process
// as holder and the owner as owner. Everything is released on SIGTERM, SIGINT or SIGHUP,
// and when stdin ends (the client is gone, even if killed); with --owner, only once that
// process has exited too (a shell that exec'd its last command has closed the pipe, but
// the command it runs still counts on the locks). A request line is at most
// MAX_REQUEST_BYTES long.
import { writeSync } from "node:fs";
import { getppid, leaveProcessGroup, pollReadable } from "../../ffi/libc";
import { acquire, release, type Held, type SlotRequest } from "../engine";
import { BusyError, conflictStatus, EXIT, unansweredStatus, UsageError, WaitlockError } from "../errors";
import { resolveLockDir, type LockDir } from "../lockdir";
import { sameProcess, startedAt } from "../holders";
import { debug } from "../log";
import { canWaitOffThread, waitOffThread } from "../offthread";
import { parseOptions, type Options, type RecordForm } from "../options";
import { commandLine, exitWatch, refuseForeignOwner, untilExit } from "../procinfo";
import { pollingForced } from "../waker";
import { checkSlots } from "./check";
import { describeHolder, storeRecord } from "../holderrecord";
import { noEvents, syslogEvents, type Events } from "../events";
import { slotHeldFor } from "./hold";
import { listRows } from "./list";
import { STOP_SIGNALS } from "../child";

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

/**
 * While it holds on after the end of input, how often the coprocess wakes to let a signal
 * handler run: one of its threads may take the signal without interrupting the wait.
 */
const SIGNAL_SLICE_MS = 100;

/** How often a coprocess with --owner checks that its owner is still there, while serving. */
const OWNER_CHECK_MS = 1000;

/** How many distinct requests keep their parsed options. */
const PARSED_KEPT = 256;

/** The longest request line, in bytes without its newline: a longer one is answered with status 3. */
export const MAX_REQUEST_BYTES = 65536;

const VERBS = ["acquire", "release", "check", "list", "cancel"] as const;
type Verb = (typeof VERBS)[number];

/** The fields of a request line as written (still %XX-encoded), empty ones dropped. */
export const rawFields = (line: string): string[] => line.split(" ").filter((f) => f !== "");

/** One field %XX-decoded (a lone "%" is an empty field). Throws UsageError for a bad escape. */
export function decodeField(raw: string): string {
  if (raw === "%") return "";
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new UsageError(raw, "bad %XX escape in request (%XX is two hexadecimal digits; a percent sign is %25)");
  }
}

/**
 * Cuts a byte stream into request lines (UTF-8, without their newline) of at most `max`
 * bytes. A longer line is not kept: `tooLong` gets its first bytes (enough to read the
 * ID) and the rest of it is skipped, so memory stays bounded by `max` whatever comes in.
 */
export class RequestLines {
  private parts: Uint8Array[] = [];
  private size = 0;
  private skipping = false;
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly max: number,
    private readonly line: (line: string) => void,
    private readonly tooLong: (head: string) => void,
  ) {}

  /** Takes the next bytes read; calls back for every line they complete. */
  push(chunk: Uint8Array): void {
    for (let from = 0; from < chunk.length; ) {
      const nl = chunk.indexOf(10, from);
      const end = nl < 0 ? chunk.length : nl;
      if (!this.skipping) {
        if (this.size + (end - from) > this.max) {
          this.skipping = true;
          this.tooLong(this.decoder.decode(this.take(chunk.subarray(from, end)).subarray(0, 256)));
        } else if (nl >= 0) {
          // The common case, a whole line in one read, is decoded without a copy.
          this.line(this.decoder.decode(this.size === 0 ? chunk.subarray(from, end) : this.take(chunk.subarray(from, end))));
        } else {
          // Kept past this call: a copy, in case the reader reuses its buffer.
          this.parts.push(chunk.slice(from, end));
          this.size += end - from;
        }
      }
      if (nl < 0) return;
      this.skipping = false;
      from = nl + 1;
    }
  }

  /** The end of input: a last line without its newline counts. */
  end(): void {
    if (!this.skipping && this.size > 0) this.line(this.decoder.decode(this.take()));
  }

  /** The bytes kept so far (and `more`), as one array; nothing is kept after. */
  private take(more?: Uint8Array): Uint8Array {
    if (more) this.parts.push(more);
    const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.size = 0;
    return all;
  }
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

/** How a coprocess serves: `waitlock --serve [-d DIR] [--owner PID] [-v]`. */
export interface ServeSettings {
  verbose: boolean;
  /** the lock directory for requests that name none (-d or WAITLOCK_DIR of the coprocess) */
  lockDir?: string;
  /** --owner: the process the locks live for, whose exit alone releases them after the end of input */
  owner?: number;
}

export class Server {
  /** held locks by "DIR/NAME" */
  private readonly holding = new Map<string, Holding>();
  private readonly dirs = new Map<string, LockDir>();
  private readonly parsed = new Map<string, { opts: Options; env: Record<string, string> }>();
  readonly owner: number;
  /** the owner's start (Unix seconds), to tell it from a later process with its PID */
  readonly ownerStart: number | undefined;
  private readonly ownerCommand: string;
  private readonly offThread = canWaitOffThread();
  /** answers being prepared that do not wait for a lock (list) */
  private readonly answering = new Set<Promise<void>>();
  /** acquires waiting for a lock, by request ID: how to withdraw each, and its answer */
  private readonly waiting = new Map<string, { stop: AbortController; answered: Promise<void> }>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly settings: ServeSettings,
  ) {
    this.owner = settings.owner ?? getppid();
    this.ownerStart = startedAt(this.owner);
    this.ownerCommand = commandLine(this.owner);
  }

  /** Answers one request line: at once, or (an acquire that waits) when the wait ends. */
  handle(line: string): void {
    const raw = rawFields(line);
    if (raw.length === 0) return;
    // Answers carry the ID as written: it is one field, whatever the rest of the line holds.
    const id = raw[0]!;
    try {
      const fields = raw.map(decodeField);
      const verb = fields[1] as Verb | undefined;
      if (!verb || !VERBS.includes(verb)) throw new UsageError(verb ?? "request", `unknown request (${VERBS.join(", ")})`);
      if (verb === "cancel") return this.answer(id, this.cancel(raw.slice(2)));
      const { opts, env } = this.parse(verb, fields, raw.slice(2).join(" "));
      // --quiet: no message but for usage errors, as on the command line.
      const fail = (e: unknown) => {
        const a = failure(e);
        // A check that cannot tell answers 2, as on the command line.
        a.status = verb === "check" ? unansweredStatus(e, a.status, EXIT.TIMEOUT) : conflictStatus(e, a.status, opts.conflictExitCode);
        return opts.quiet && a.status !== EXIT.USAGE ? { status: a.status } : a;
      };
      let answer: Answer | Promise<Answer>;
      try {
        answer = this.run(id, verb, opts, env);
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

  /** A request line longer than MAX_REQUEST_BYTES, of which `head` is the start: refused. */
  refuse(head: string): void {
    const text = head.trimStart();
    const space = text.indexOf(" ");
    this.answer(space > 0 ? text.slice(0, space) : "-", { status: EXIT.USAGE, text: `request: longer than ${MAX_REQUEST_BYTES} bytes` });
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
    // A request that names no directory (-d, WAITLOCK_DIR) uses the coprocess's.
    opts.lockDir ??= this.settings.lockDir;
    if (this.parsed.size >= PARSED_KEPT) this.parsed.clear();
    this.parsed.set(text, { opts, env });
    return { opts, env };
  }

  private answer(id: string, a: Answer): void {
    this.write(answerLine(id, a));
  }

  private run(id: string, verb: Verb, opts: Options, env: Record<string, string>): Answer | Promise<Answer> {
    if (opts.owner !== undefined) throw new UsageError("--owner", "a coprocess holds its locks for its client");
    if (opts.file !== undefined || opts.fd !== undefined) throw new UsageError(opts.file !== undefined ? "--file" : "--fd", "not through the coprocess: run waitlock itself");
    // A lock asked for on a network engine must never be taken here instead.
    if (opts.backend !== undefined) throw new UsageError("--backend", "not through the coprocess (it keeps locks in the lock directory): run waitlock itself");
    if (opts.shared && verb === "acquire") throw new UsageError("--shared", "the coprocess takes exclusive locks only; run waitlock -s itself");
    if (verb === "list") return this.list(opts);
    if (opts.name === undefined) throw new UsageError("lock name", "missing");
    if (verb === "check") return { status: checkSlots(resolveLockDir(opts.lockDir, env, false)?.path, opts.name, opts.slots, opts.shared ? "shared" : "exclusive") };
    const dir = this.lockDir(opts.lockDir);
    const req: SlotRequest = { dir: dir.path, shared: dir.shared, name: opts.name, slots: opts.slots, preferred: opts.preferredSlot };
    return verb === "release" ? this.release(req) : this.acquire(id, req, opts);
  }

  /** `ID cancel TARGET`: withdraws the waiting acquire TARGET (answered with status 2, cancelled). */
  private cancel(args: string[]): Answer {
    if (args.length !== 1) throw new UsageError("cancel", "takes one argument: the ID of the acquire to withdraw");
    const wait = this.waiting.get(args[0]!);
    if (!wait) return { status: EXIT.BUSY, text: `${args[0]}: no acquire with this ID is waiting` };
    wait.stop.abort();
    return { status: EXIT.OK };
  }

  private lockDir(path: string | undefined): LockDir {
    // Resolving costs system calls; a client in a loop names the same directory every time.
    const key = path ?? "";
    let dir = this.dirs.get(key);
    if (!dir) this.dirs.set(key, (dir = resolveLockDir(path, {})!));
    return dir;
  }

  private acquire(id: string, req: SlotRequest, opts: Options): Answer | Promise<Answer> {
    const key = `${req.dir}/${req.name}`;
    const mine = this.holding.get(key);
    if (mine) {
      debug(`'${req.name}' slot ${mine.held.slot} is already held for process ${this.owner}`);
      return { status: EXIT.OK, slot: mine.held.slot };
    }
    const events = opts.syslog ? syslogEvents(opts.facility, req.name, req.slots) : noEvents;
    const isOurs = slotHeldFor(this.owner, this.ownerStart, "exclusive");
    let outcome;
    try {
      outcome = acquire(req, 0, { isOurs });
    } catch (e) {
      if (!(e instanceof BusyError) || opts.timeout === 0) throw e;
      if (!this.offThread) throw new WaitlockError(EXIT.SYSTEM, req.name, "cannot wait off the main thread on this system; use -t 0 and retry");
      debug(`'${req.name}' is busy; waiting in a thread of its own`);
      const stop = new AbortController();
      const waited = waitOffThread(req, { timeout: opts.timeout, signal: stop.signal, verbose: this.settings.verbose, polling: pollingForced(), script: WAIT_SCRIPT });
      const wait = { stop, answered: waited.then(() => {}, () => {}) };
      this.waiting.set(id, wait);
      wait.answered.then(() => this.waiting.get(id) === wait && this.waiting.delete(id));
      return waited.then((o) => this.granted(key, req, o, opts.recordForm, events));
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

  /** Withdraws every waiting acquire and waits until each has been answered. */
  async withdrawAll(): Promise<void> {
    const waits = [...this.waiting.values()];
    for (const w of waits) w.stop.abort();
    await Promise.all(waits.map((w) => w.answered));
  }

  /** Does anything stay held for the owner once the input has ended? */
  get outlivesInput(): boolean {
    return this.settings.owner !== undefined && this.holding.size > 0 && sameProcess(this.owner, this.ownerStart);
  }

  /** Releases every lock held (the client is gone, or we were told to stop). */
  releaseAll(): void {
    for (const h of this.holding.values()) this.let(h);
    this.holding.clear();
  }
}

/**
 * Runs the coprocess until stdin ends (with --owner: and the owner has exited) or a
 * signal stops it; exit status 0 (4 when stdout cannot be written: the client is gone).
 */
export async function serve(settings: ServeSettings): Promise<number> {
  // A long-lived process: let the JIT compile the request path (package.json holds it back
  // for the one-shot modes).
  Bun.unsafe.setJITPolicy(1);
  const stop = (why: string, status: number = EXIT.OK) => () => {
    debug(`${why}: releasing every lock`);
    server.releaseAll();
    process.exit(status);
  };
  if (settings.owner === process.pid) throw new UsageError("--owner", "a coprocess cannot hold locks for itself: they would never be released");
  // The owner's exit is watched from the start, so that its PID cannot be reused unseen.
  const watch = settings.owner === undefined ? undefined : exitWatch(settings.owner);
  if (watch?.kind === "gone") throw new UsageError("--owner", `no process with PID ${settings.owner}`);
  if (settings.owner !== undefined) refuseForeignOwner(settings.owner);
  // A ^C at the owner's terminal is for the owner (the shell functions withdraw a waiting
  // acquire themselves): in a process group of its own, the coprocess keeps its locks.
  if (watch) leaveProcessGroup();
  let inputEnded = false;
  const server = new Server((line) => {
    try {
      writeSync(1, line);
    } catch {
      // After the end of input an owner that exec'd another program reads no answers.
      if (inputEnded && settings.owner !== undefined) debug("cannot answer: the client has closed its end");
      else stop("cannot answer (the client is gone)", EXIT.SYSTEM)();
    }
  }, settings);
  for (const signal of STOP_SIGNALS) process.on(signal, stop(signal));
  if (watch) {
    // The owner's exit releases even while its pipe stays open (a command it started holds
    // it: zsh's descriptors are inherited).
    const ownerGone = (): boolean => {
      if (watch.kind !== "pidfd") return !sameProcess(server.owner, server.ownerStart);
      const r = pollReadable([watch.fd], 0);
      return typeof r !== "number" && r.length > 0;
    };
    setInterval(() => ownerGone() && stop(`process ${server.owner} has exited`)(), OWNER_CHECK_MS).unref();
  }
  debug(`serving requests for process ${server.owner}`);
  const lines = new RequestLines(
    MAX_REQUEST_BYTES,
    (line) => server.handle(line),
    (head) => server.refuse(head),
  );
  try {
    for await (const chunk of Bun.stdin.stream()) lines.push(chunk);
    lines.end();
    inputEnded = true;
    await server.settle();
    if (watch && server.outlivesInput) {
      await server.withdrawAll();
      debug(`end of input; holding on until process ${server.owner} exits`);
      await untilExit(server.owner, server.ownerStart, watch.kind, watch.kind === "pidfd" ? watch.fd : -1, SIGNAL_SLICE_MS);
    }
  } catch (e) {
    debug(`cannot go on serving: ${e instanceof Error ? e.message : String(e)}`);
    server.releaseAll();
    return EXIT.SYSTEM;
  }
  stop("end of input")();
  return EXIT.OK;
}
