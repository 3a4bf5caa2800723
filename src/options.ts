// The command line, declared once as citty data (an ArgsDef). The same table drives
// parsing, --help and the checks below. citty's own parser stands on node:util, which costs
// start-up time (bench/TUNING.md) and accepts unknown options; the tokenizer here is strict
// and free.
// citty itself is loaded only to render --help.
import type { ArgDef, CommandDef } from "citty";
import { onlineCpus } from "../ffi/libc";
import { version } from "../package.json";
import { UnknownOptionError, UsageError } from "./errors";
import { MAX_SLOTS } from "./limits";
import { validateName } from "./names";

export const VERSION: string = version;

export const FORMATS = ["human", "csv", "null", "json", "prometheus"] as const;
export type Format = (typeof FORMATS)[number];

export const FACILITIES = [
  "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
  "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
] as const;

export const args = {
  name: { type: "positional", required: false, valueHint: "NAME", description: "Lock name: letters, digits, '.', '_', '-' (read from stdin when omitted)" },
  allowMultiple: { type: "string", alias: "m", valueHint: "N", description: "Semaphore with N slots (default 1: a mutex)" },
  onePerCPU: { type: "boolean", alias: "c", description: "One slot per online CPU" },
  excludeCPUs: { type: "string", alias: "x", valueHint: "N", description: "With -c: leave N CPUs out (never fewer than 1 slot)" },
  timeout: { type: "string", alias: "t", valueHint: "SECONDS", description: "Give up after SECONDS (0: try once); default: wait forever" },
  "conflict-exit-code": { type: "string", alias: "E", valueHint: "N", description: "Exit N (1-255) instead of 1 when busy or 2 when timed out" },
  check: { type: "boolean", description: "Exit 0 if a slot is free, 1 if all are held; takes nothing" },
  done: { type: "boolean", description: "Signal every holder of NAME to release, and wait until they have" },
  exec: { type: "string", alias: "e", valueHint: "CMD [ARG...]", description: "Run CMD while holding the lock (must come last)" },
  list: { type: "boolean", alias: "l", description: "List held locks and the processes waiting for them" },
  all: { type: "boolean", alias: "a", description: "With --list: include stale and corrupt records" },
  "stale-only": { type: "boolean", description: "With --list: only stale and corrupt records" },
  format: { type: "enum", alias: "f", options: [...FORMATS], valueHint: "FORMAT", description: "With --list: human, csv, null, json or prometheus" },
  watch: { type: "string", valueHint: "[SECONDS]", description: "With --list: list again every SECONDS (default 2) until interrupted; live on a terminal" },
  output: { type: "string", alias: "o", valueHint: "FILE", description: "With --list: write to FILE, replaced atomically (a temporary file renamed over it)" },
  backend: { type: "string", valueHint: "URL", description: "Keep locks in a network engine, postgres://... or redis://..., instead of the lock directory (default: WAITLOCK_BACKEND)" },
  "lock-dir": { type: "string", alias: "d", valueHint: "DIR", description: "Lock directory (default: WAITLOCK_DIR, then the first usable system directory)" },
  owner: { type: "string", valueHint: "PID", description: "Hold the lock until process PID exits (default: the calling process)" },
  "print-slot": { type: "boolean", description: "Print the slot taken (0-based) on stdout; with --exec before the command starts" },
  quiet: { type: "boolean", alias: "q", description: "Print nothing but usage errors" },
  verbose: { type: "boolean", alias: "v", description: "Print debug lines on stderr" },
  syslog: { type: "boolean", description: "Log lock events to syslog" },
  "syslog-facility": { type: "string", valueHint: "FACILITY", description: "Syslog facility: daemon (default), user, local0..local7, ..." },
  serve: { type: "boolean", description: "Serve lock requests from stdin, answering on stdout (a shell's coprocess)" },
  "shell-init": { type: "string", valueHint: "SHELL", description: "Print shell functions (bash or zsh) that take locks through one --serve coprocess" },
  shared: { type: "boolean", alias: "s", description: "A shared (reader) lock: any number of shared holders, or one exclusive" },
  file: { type: "string", valueHint: "PATH", description: "Lock this existing file or directory itself, as flock(1) does (never created or written)" },
  fd: { type: "string", valueHint: "N", description: "Lock the caller's open descriptor N and return; held until the caller closes N" },
  unlock: { type: "boolean", description: "With --fd: release the lock on descriptor N" },
  help: { type: "boolean", alias: "h", description: "Show this help" },
  version: { type: "boolean", alias: "V", description: "Show the version" },
} as const satisfies Record<string, ArgDef>;

export const command = {
  meta: {
    name: "waitlock",
    version: VERSION,
    description: "Named mutexes and counting semaphores for shell scripts, released when their holder dies.",
  },
  args,
} satisfies CommandDef<typeof args>;

type Key = Exclude<keyof typeof args, "name">;
const table: Record<string, ArgDef> = args;

/** allowMultiple -> allow-multiple, onePerCPU -> one-per-cpu (no regex: each costs start-up). */
export function kebab(name: string): string {
  let out = "";
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    const upper = c >= "A" && c <= "Z";
    out += upper && i > 0 && !(name[i - 1]! >= "A" && name[i - 1]! <= "Z") ? `-${c.toLowerCase()}` : c.toLowerCase();
  }
  return out;
}

const aliasesOf = (def: ArgDef): string[] => {
  const alias = "alias" in def ? def.alias : undefined;
  return Array.isArray(alias) ? alias : alias ? [alias] : [];
};

/**
 * The option a command-line flag names: --longName, --long-name or -s. Looked up per flag
 * rather than from a table of every spelling: building that table cost start-up time
 * (bench/TUNING.md, second round).
 */
function optionFor(flag: string): Key | undefined {
  if (flag.startsWith("--")) {
    const word = flag.slice(2);
    if (word !== "name" && Object.hasOwn(table, word)) return word as Key;
    for (const key in table) if (key !== "name" && kebab(key) === word) return key as Key;
    return undefined;
  }
  const letter = flag.slice(1);
  for (const key in table) if (aliasesOf(table[key]!).includes(letter)) return key as Key;
  return undefined;
}

/** Every spelling an option answers to (for the shell completions). */
export function spellings(): Map<string, Key> {
  const spelled = new Map<string, Key>();
  for (const key in table) {
    if (key === "name") continue;
    spelled.set(`--${key}`, key as Key);
    spelled.set(`--${kebab(key)}`, key as Key);
    for (const a of aliasesOf(table[key]!)) spelled.set(`-${a}`, key as Key);
  }
  return spelled;
}

export interface Tokens {
  values: Partial<Record<Key, string | true>>;
  /** how each option given was spelt, for messages: "-m" as given, a long one in kebab case */
  spelled: Partial<Record<Key, string>>;
  positionals: string[];
  /** argv after --exec, when given */
  command?: string[];
}

/**
 * An option whose value may be left out is shown with it in brackets ("[SECONDS]"). Its
 * value is the word after `=`, or the next word when that is a number: anything else
 * there is left for what it is (a NAME made of digits goes before the option, or after --).
 */
const optionalValue = (k: Key) => (table[k] as { valueHint?: string }).valueHint?.startsWith("[") === true;

export function tokenize(argv: string[]): Tokens {
  const out: Tokens = { values: {}, spelled: {}, positionals: [] };
  const takesValue = (k: Key) => table[k]!.type !== "boolean";
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (tok.startsWith("--")) {
      const eq = tok.indexOf("=");
      const flag = eq < 0 ? tok : tok.slice(0, eq);
      const inline = eq < 0 ? undefined : tok.slice(eq + 1);
      const key = optionFor(flag);
      if (!key) throw new UnknownOptionError(flag);
      const spelt = (out.spelled[key] = `--${kebab(key)}`);
      if (key === "exec") {
        out.command = inline === undefined ? argv.slice(i + 1) : [inline, ...argv.slice(i + 1)];
        break;
      }
      if (!takesValue(key)) {
        if (inline !== undefined) throw new UsageError(spelt, "takes no value");
        out.values[key] = true;
      } else if (optionalValue(key)) {
        const next = argv[i + 1];
        out.values[key] = inline ?? (next !== undefined && isDecimal(next) ? argv[++i]! : true);
      } else {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new UsageError(spelt, "needs a value");
        out.values[key] = value;
      }
      continue;
    }
    if (tok.startsWith("-") && tok.length > 1) {
      for (let j = 1; j < tok.length; j++) {
        const flag = `-${tok[j]}`;
        const key = optionFor(flag);
        if (!key) throw new UnknownOptionError(flag);
        const after = tok.slice(j + 1);
        const rest = after.startsWith("=") ? after.slice(1) : after;
        out.spelled[key] = flag;
        if (key === "exec") {
          out.command = rest ? [rest, ...argv.slice(i + 1)] : argv.slice(i + 1);
          return out;
        }
        if (!takesValue(key)) {
          out.values[key] = true;
          continue;
        }
        const value = rest || argv[++i];
        if (value === undefined) throw new UsageError(flag, "needs a value");
        out.values[key] = value;
        break;
      }
      continue;
    }
    out.positionals.push(tok);
  }
  return out;
}

export type RecordForm = "binary" | "text";

export const SHELLS = ["bash", "zsh"] as const;
export type Shell = (typeof SHELLS)[number];

/** "fd" and "unlock": --fd N, and --fd N --unlock. */
export type Mode = "acquire" | "exec" | "check" | "done" | "list" | "fd" | "unlock" | "serve" | "shell-init" | "help" | "version";

/** --done without -t: how long the holders have to let go after being asked, in seconds. */
export const DONE_WAIT_SECONDS = 5;

/** --watch without SECONDS: every 2 seconds, as watch(1). */
export const WATCH_SECONDS = 2;
/** The shortest --watch interval, as watch(1)'s. */
const WATCH_MIN_SECONDS = 0.1;

export interface Options {
  mode: Mode;
  /** undefined: read it from stdin (for the modes that need one) */
  name?: string;
  command?: string[];
  slots: number;
  preferredSlot?: number;
  /** seconds; null waits forever */
  timeout: number | null;
  /** -s: a shared (reader) lock */
  shared: boolean;
  /** --file: the existing file or directory to lock instead of a NAME */
  file?: string;
  /** --fd: the caller's descriptor to lock (or unlock) */
  fd?: number;
  /** -E: the exit status for busy and timed out, instead of 1 and 2 */
  conflictExitCode?: number;
  lockDir?: string;
  /** --backend: the URL of a network engine (src/backend.ts); undefined: the lock directory */
  backend?: string;
  owner?: number;
  format: Format;
  /** --list --watch: seconds between listings */
  watch?: number;
  /** --list -o: the file to replace with the listing */
  output?: string;
  all: boolean;
  staleOnly: boolean;
  quiet: boolean;
  verbose: boolean;
  syslog: boolean;
  facility: string;
  /** how holders write their record (WAITLOCK_RECORD) */
  recordForm: RecordForm;
  /** wait by polling, without inotify or pidfd (WAITLOCK_POLL) */
  poll: boolean;
  /** print the slot taken on stdout (--print-slot) */
  printSlot: boolean;
  /** --shell-init: the shell to print functions for */
  shell?: Shell;
}

const isDigit = (c: string) => c >= "0" && c <= "9";

/** Loops rather than a regex or `every`: each costs start-up on first use. */
function allDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isDigit(s[i]!)) return false;
  return s.length > 0;
}

/** 12, 1.5, 1. or .5 */
function isDecimal(s: string): boolean {
  const dot = s.indexOf(".");
  if (dot < 0) return allDigits(s);
  const whole = s.slice(0, dot);
  const fraction = s.slice(dot + 1);
  return (whole === "" || allDigits(whole)) && (fraction === "" || allDigits(fraction)) && whole + fraction !== "";
}

/** The largest value of a C int: no descriptor, PID or CPU count can be larger. */
const INT_MAX = 2147483647;
/** The longest --watch interval: a longer one overflows the event loop's timers (2^31 - 1 ms). */
const WATCH_MAX_SECONDS = 2147483;
/** The longest timeout: beyond it seconds are no longer counted exactly (2^53 - 1). */
const TIMEOUT_MAX_SECONDS = Number.MAX_SAFE_INTEGER;

/** The values a number on the command line may take, and why the largest is the largest. */
interface Range {
  min: number;
  max: number;
  /** what the maximum is, for the message ("the most slots a lock can have") */
  why?: string;
}

/**
 * Why `value` is no number of the kind wanted (whole: an integer), for a message. Only on
 * the error path: a regex costs start-up on its first use.
 */
function notANumber(value: string, whole: boolean): string {
  const v = value.trim();
  if (v === "") return "is empty";
  if (v.startsWith("-") && (isDecimal(v.slice(1)) || /^-\d*\.?\d*e/i.test(v))) return "is negative";
  if (/^[+-]?0x[0-9a-f]+$/i.test(v)) return "is hexadecimal, not decimal";
  if (/^[+-]?(\d+\.?\d*|\.\d+)e[+-]?\d+$/i.test(v)) return "is in exponent notation, not plain decimal";
  if (whole && isDecimal(v)) return "is not a whole number";
  return "is not a number";
}

const because = (r: Range) => (r.why ? ` (${r.why})` : "");

/**
 * A whole number in `range`, given in decimal digits (blanks around them ignored, as for
 * seconds). Throws UsageError (3) naming `context` and what is wrong.
 */
function integer(value: string, context: string, range: Range): number {
  const v = value.trim();
  if (!allDigits(v)) throw new UsageError(context, `'${value}' ${notANumber(value, true)}; expected a whole number from ${range.min} to ${range.max}${because(range)}`);
  const n = Number(v);
  if (n > range.max) throw new UsageError(context, `'${value}' is too large: at most ${range.max}${because(range)}`);
  if (n < range.min) throw new UsageError(context, `'${value}' is too small: at least ${range.min}`);
  return n;
}

/**
 * A number of seconds, `min` to `max`, fractions allowed. Throws UsageError (3) naming
 * `context` and what is wrong.
 */
export function seconds(value: string, context: string, max = TIMEOUT_MAX_SECONDS, min = 0): number {
  const v = value.trim();
  const least = min === 0 ? "0 or more" : `at least ${min}`;
  if (!isDecimal(v)) throw new UsageError(context, `'${value}' ${notANumber(value, false)}; expected a number of seconds, ${least} (such as 2.5)`);
  const n = Number(v);
  if (n > max) throw new UsageError(context, `'${value}' is too large: at most ${max} seconds`);
  if (n < min) throw new UsageError(context, `'${value}' is too short: at least ${min} seconds`);
  return n;
}

const truthy = (v: string | undefined) => !!v && /^(1|true|yes)$/i.test(v.trim());

/** The tokens of one command line, asked by option. */
interface CommandLine {
  given(k: Key): boolean;
  str(k: Key): string | undefined;
  /** the option as the user gave it, for messages: -m as -m, --allowMultiple as --allow-multiple */
  flag(k: Key): string;
  values: Tokens["values"];
  positionals: string[];
  command?: string[];
}

type Env = Record<string, string | undefined>;

function commandLine(argv: string[]): CommandLine {
  const { values, spelled, positionals, command } = tokenize(argv);
  return {
    given: (k) => values[k] !== undefined,
    str: (k) => values[k] as string | undefined,
    flag: (k) => spelled[k] ?? `--${kebab(k)}`,
    values,
    positionals,
    command,
  };
}

/**
 * Reads the command line and the WAITLOCK_* environment (`env`) into Options. Throws
 * UsageError (3) naming the option or variable at fault, UnknownOptionError (3) for an
 * option the table does not have.
 */
export function parseOptions(argv: string[], env: Env): Options {
  const c = commandLine(argv);
  if (c.given("help")) return blank("help");
  if (c.given("version")) return blank("version");
  const mode = modeOf(c);
  const onFile = c.given("file") || c.given("fd");
  refuseMisplaced(c, mode, onFile);
  const slots = slotsOf(c);
  const listing = listingOf(c);
  return {
    mode,
    command: c.command,
    slots,
    preferredSlot: (mode === "acquire" || mode === "exec") && !onFile ? preferredSlotOf(env, slots) : undefined,
    timeout: timeoutOf(c, env, mode),
    shared: c.given("shared"),
    ...fileOf(c),
    conflictExitCode: c.given("conflict-exit-code")
      ? integer(c.str("conflict-exit-code")!, c.flag("conflict-exit-code"), { min: 1, max: 255, why: "an exit status is 1 to 255" })
      : undefined,
    ...placeOf(c, env, mode, onFile),
    owner: ownerOf(c),
    ...listing,
    all: c.given("all"),
    staleOnly: c.given("stale-only"),
    quiet: c.given("quiet"),
    verbose: c.given("verbose") || truthy(env.WAITLOCK_DEBUG),
    syslog: c.given("syslog"),
    facility: facilityOf(c),
    recordForm: recordFormOf(env),
    poll: truthy(env.WAITLOCK_POLL),
    printSlot: c.given("print-slot"),
    shell: c.str("shell-init") as Shell | undefined,
    // Last: a message about an option comes before one about the NAME.
    name: c.positionals[0] === undefined ? undefined : validateName(c.positionals[0]),
  };
}

/** The mode the options choose (one at most), and what each mode refuses in its arguments. */
function modeOf(c: CommandLine): Mode {
  const modes: [Mode, Key][] = [];
  for (const m of ["check", "done", "list", "serve", "shell-init"] as const) if (c.given(m)) modes.push([m, m]);
  if (c.command) modes.push(["exec", "exec"]);
  if (c.given("fd")) modes.push([c.given("unlock") ? "unlock" : "fd", "fd"]);
  if (modes.length > 1) throw new UsageError(modes.map(([, k]) => c.flag(k)).join(" and "), "cannot be used together");
  const mode: Mode = c.command ? "exec" : (modes[0]?.[0] ?? "acquire");
  const shell = c.str("shell-init");
  if (shell !== undefined && !SHELLS.includes(shell as Shell)) throw new UsageError(c.flag("shell-init"), `'${shell}' is not one of ${SHELLS.join(", ")}`);
  const [first, second] = c.positionals;
  if (second !== undefined) throw new UsageError(second, "unexpected argument (one NAME only; commands go after --exec)");
  if ((mode === "serve" || mode === "shell-init") && first !== undefined) throw new UsageError(first, `unexpected argument (${c.flag(mode)} takes no NAME)`);
  if (c.command?.length === 0) throw new UsageError(c.flag("exec"), "needs a command");
  return mode;
}

/** Refuses options given where they mean nothing, and pairs that contradict each other. */
function refuseMisplaced(c: CommandLine, mode: Mode, onFile: boolean): void {
  const only = (k: Key, allowed: Mode[], what: string) => {
    if (c.given(k) && !allowed.includes(mode)) throw new UsageError(c.flag(k), `only makes sense ${what}`);
  };
  only("all", ["list"], "with --list");
  only("stale-only", ["list"], "with --list");
  only("format", ["list"], "with --list");
  only("watch", ["list"], "with --list");
  only("output", ["list"], "with --list");
  only("owner", ["acquire", "serve"], "when acquiring for the caller (without --exec, --check, --done or --list) or with --serve");
  only("timeout", ["acquire", "exec", "done", "fd"], "when acquiring or with --done");
  only("print-slot", ["acquire", "exec"], "when acquiring");
  only("conflict-exit-code", ["acquire", "exec", "fd"], "when acquiring (without --check, --done or --list)");
  only("unlock", ["unlock"], "with --fd");
  only("shared", ["acquire", "exec", "check", "fd"], "when acquiring or with --check");
  const together = (a: Key, b: Key) => {
    if (c.given(a) && c.given(b)) throw new UsageError(`${c.flag(a)} and ${c.flag(b)}`, "cannot be used together");
  };
  together("file", "fd");
  together("all", "stale-only");
  together("allowMultiple", "onePerCPU");
  if (onFile && c.positionals.length > 0) throw new UsageError(c.positionals[0]!, `unexpected argument: ${c.flag(c.given("fd") ? "fd" : "file")} locks a file, not a NAME`);
  if (onFile && (c.given("allowMultiple") || c.given("onePerCPU")))
    throw new UsageError(c.flag(c.given("allowMultiple") ? "allowMultiple" : "onePerCPU"), "a file is one lock: no slots to choose from");
  if (c.given("excludeCPUs") && !c.given("onePerCPU")) throw new UsageError(c.flag("excludeCPUs"), "only makes sense with -c (--one-per-cpu)");
}

/** N, the slots of the lock: -m N, or -c (the online CPUs less -x), else 1. */
function slotsOf(c: CommandLine): number {
  let slots = 1;
  if (c.given("allowMultiple")) slots = integer(c.str("allowMultiple")!, c.flag("allowMultiple"), { min: 1, max: MAX_SLOTS, why: "the most slots a lock can have" });
  if (c.given("onePerCPU")) {
    slots = slotsPerCpu(c.given("excludeCPUs") ? integer(c.str("excludeCPUs")!, c.flag("excludeCPUs"), { min: 0, max: INT_MAX }) : 0);
  }
  if (c.given("shared") && (slots > 1 || c.given("onePerCPU")))
    throw new UsageError(c.flag("shared"), "a shared lock has one slot: it cannot be used with -m N > 1 or -c");
  return slots;
}

/**
 * -c: one slot per online CPU but `excluded`, at least 1. A machine with more CPUs than
 * MAX_SLOTS gets the maximum: -c names no number to refuse. (Out of slotsOf: naming `Math`
 * makes JavaScriptCore set it up when it links the function, bench/TUNING.md.)
 */
function slotsPerCpu(excluded: number): number {
  return Math.min(MAX_SLOTS, Math.max(1, onlineCpus() - excluded));
}

/** WAITLOCK_SLOT, the 0-based slot to try first, when set. */
function preferredSlotOf(env: Env, slots: number): number | undefined {
  if (env.WAITLOCK_SLOT === undefined || env.WAITLOCK_SLOT === "") return undefined;
  const slot = env.WAITLOCK_SLOT.trim();
  const range = `lock has ${slots} slot${slots === 1 ? "" : "s"} (0..${slots - 1})`;
  if (!allDigits(slot)) throw new UsageError("WAITLOCK_SLOT", `'${env.WAITLOCK_SLOT}' ${notANumber(slot, true)}; expected a slot number: ${range}`);
  const preferred = Number(slot);
  if (preferred >= slots) throw new UsageError("WAITLOCK_SLOT", `slot ${slot} does not exist: ${range}`);
  return preferred;
}

/** Seconds to wait: -t, else WAITLOCK_TIMEOUT where a mode waits; null: for ever. */
function timeoutOf(c: CommandLine, env: Env, mode: Mode): number | null {
  if (c.given("timeout")) return seconds(c.str("timeout")!, c.flag("timeout"));
  if (env.WAITLOCK_TIMEOUT !== undefined && env.WAITLOCK_TIMEOUT.trim() !== "" && (mode === "acquire" || mode === "exec" || mode === "fd"))
    return seconds(env.WAITLOCK_TIMEOUT, "WAITLOCK_TIMEOUT");
  return null;
}

/** --file PATH or --fd N. */
function fileOf(c: CommandLine): Pick<Options, "file" | "fd"> {
  const file = c.str("file");
  if (file === "") throw new UsageError(c.flag("file"), "must not be empty");
  const fd = c.given("fd") ? integer(c.str("fd")!, c.flag("fd"), { min: 0, max: INT_MAX, why: "the largest descriptor number" }) : undefined;
  return { file, fd };
}

/** Where the locks live: the lock directory (-d, WAITLOCK_DIR) or a network engine (--backend, WAITLOCK_BACKEND). */
function placeOf(c: CommandLine, env: Env, mode: Mode, onFile: boolean): Pick<Options, "lockDir" | "backend"> {
  const lockDir = c.given("lock-dir") ? c.str("lock-dir") : env.WAITLOCK_DIR || undefined;
  if (lockDir === "") throw new UsageError(c.given("lock-dir") ? c.flag("lock-dir") : "WAITLOCK_DIR", "must not be empty");
  // An explicit -d beats WAITLOCK_BACKEND, as options beat the environment; a file lock is
  // this machine's by nature, whatever the environment says.
  const fromEnv = !c.given("backend") && !c.given("lock-dir") && !onFile && mode !== "unlock" ? env.WAITLOCK_BACKEND || undefined : undefined;
  const backend = c.given("backend") ? c.str("backend") : fromEnv;
  if (backend !== undefined) {
    const source = c.given("backend") ? "--backend" : "WAITLOCK_BACKEND";
    if (backend.trim() === "") throw new UsageError(source, "must not be empty");
    if (c.given("lock-dir")) throw new UsageError("--backend and --lock-dir", "cannot be used together");
    if (onFile) throw new UsageError(`--backend and --${c.given("fd") ? "fd" : "file"}`, "cannot be used together: a file is locked on this machine");
    if (mode === "serve" || mode === "shell-init")
      throw new UsageError(`${source} and --${mode}`, "cannot be used together: the coprocess keeps locks in the lock directory (-d DIR selects it)");
  }
  return { lockDir, backend };
}

/** --owner PID: never init, which never exits. */
function ownerOf(c: CommandLine): number | undefined {
  if (!c.given("owner")) return undefined;
  const owner = integer(c.str("owner")!, c.flag("owner"), { min: 1, max: INT_MAX, why: "the largest PID" });
  // PID 1 is init, of the machine or of this PID namespace: the lock would outlive everything.
  if (owner === 1) throw new UsageError(c.flag("owner"), "PID 1 (init) never exits: the lock would stay held until 'waitlock --done NAME'");
  return owner;
}

/** How --list writes: -f, --watch [SECONDS], -o FILE. */
function listingOf(c: CommandLine): Pick<Options, "format" | "watch" | "output"> {
  const format = (c.str("format") ?? "human") as Format;
  if (!FORMATS.includes(format)) throw new UsageError(c.flag("format"), `'${format}' is not one of ${FORMATS.join(", ")}`);
  if (format === "prometheus" && (c.given("all") || c.given("stale-only")))
    throw new UsageError(c.flag(c.given("all") ? "all" : "stale-only"), "does not apply to -f prometheus (its metrics count stale and corrupt records)");
  let watch: number | undefined;
  if (c.given("watch")) watch = c.values.watch === true ? WATCH_SECONDS : seconds(c.str("watch")!, c.flag("watch"), WATCH_MAX_SECONDS, WATCH_MIN_SECONDS);
  const output = c.str("output");
  if (output === "") throw new UsageError(c.flag("output"), "must not be empty");
  if (watch !== undefined && format !== "human" && output === undefined)
    throw new UsageError(c.flag("watch"), `with -f ${format} needs -o FILE (each listing replaces the file); only the human view goes to stdout`);
  return { format, watch, output };
}

/** --syslog-facility, lower case (default daemon). */
function facilityOf(c: CommandLine): string {
  const facility = (c.str("syslog-facility") ?? "daemon").toLowerCase();
  if (!(FACILITIES as readonly string[]).includes(facility))
    throw new UsageError(c.flag("syslog-facility"), `'${c.str("syslog-facility")}' is not a syslog facility (daemon, user, local0..local7, ...)`);
  return facility;
}

/** WAITLOCK_RECORD: binary (default) or text. */
function recordFormOf(env: Env): RecordForm {
  const form = (env.WAITLOCK_RECORD?.trim().toLowerCase() || "binary") as RecordForm;
  if (form !== "binary" && form !== "text") throw new UsageError("WAITLOCK_RECORD", `'${env.WAITLOCK_RECORD}' is not binary or text`);
  return form;
}

function blank(mode: Mode): Options {
  return { mode, slots: 1, timeout: null, shared: false, format: "human", all: false, staleOnly: false, quiet: false, verbose: false, syslog: false, facility: "daemon", recordForm: "binary", poll: false, printSlot: false };
}
