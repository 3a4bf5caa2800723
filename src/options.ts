// The command line, declared once as citty data (an ArgsDef). The same table drives
// parsing, --help and the checks below. citty's own parser stands on node:util, which costs
// ~3 ms of start-up and accepts unknown options; the tokenizer here is strict and free.
// citty itself is loaded only to render --help.
import type { ArgDef, CommandDef } from "citty";
import { onlineCpus } from "../ffi/libc";
import { version } from "../package.json";
import { UsageError } from "./errors";
import { MAX_SLOTS } from "./limits";
import { validateName } from "./names";

export const VERSION: string = version;

export const FORMATS = ["human", "csv", "null", "json"] as const;
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
  list: { type: "boolean", alias: "l", description: "List held locks" },
  all: { type: "boolean", alias: "a", description: "With --list: include stale and corrupt records" },
  "stale-only": { type: "boolean", description: "With --list: only stale and corrupt records" },
  format: { type: "enum", alias: "f", options: [...FORMATS], valueHint: "FORMAT", description: "With --list: human, csv, null or json" },
  "lock-dir": { type: "string", alias: "d", valueHint: "DIR", description: "Lock directory (default: WAITLOCK_DIR, then the first usable system directory)" },
  owner: { type: "string", valueHint: "PID", description: "Hold the lock until process PID exits (default: the calling process)" },
  quiet: { type: "boolean", alias: "q", description: "Print nothing but usage errors" },
  verbose: { type: "boolean", alias: "v", description: "Print debug lines on stderr" },
  syslog: { type: "boolean", description: "Log lock events to syslog" },
  "syslog-facility": { type: "string", valueHint: "FACILITY", description: "Syslog facility: daemon (default), user, local0..local7, ..." },
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
function kebab(name: string): string {
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
 * rather than from a table of every spelling: building that table cost ~0.2 ms of start-up.
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
  positionals: string[];
  /** argv after --exec, when given */
  command?: string[];
}

export function tokenize(argv: string[]): Tokens {
  const out: Tokens = { values: {}, positionals: [] };
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
      if (!key) throw new UsageError(flag, "unknown option (see --help)");
      if (key === "exec") {
        out.command = inline === undefined ? argv.slice(i + 1) : [inline, ...argv.slice(i + 1)];
        break;
      }
      if (!takesValue(key)) {
        if (inline !== undefined) throw new UsageError(flag, "takes no value");
        out.values[key] = true;
      } else {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new UsageError(flag, "needs a value");
        out.values[key] = value;
      }
      continue;
    }
    if (tok.startsWith("-") && tok.length > 1) {
      for (let j = 1; j < tok.length; j++) {
        const flag = `-${tok[j]}`;
        const key = optionFor(flag);
        if (!key) throw new UsageError(flag, "unknown option (see --help)");
        const after = tok.slice(j + 1);
        const rest = after.startsWith("=") ? after.slice(1) : after;
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

export type Mode = "acquire" | "exec" | "check" | "done" | "list" | "help" | "version";

export interface Options {
  mode: Mode;
  /** undefined: read it from stdin (for the modes that need one) */
  name?: string;
  command?: string[];
  slots: number;
  preferredSlot?: number;
  /** seconds; null waits forever */
  timeout: number | null;
  /** -E: the exit status for busy and timed out, instead of 1 and 2 */
  conflictExitCode?: number;
  lockDir?: string;
  owner?: number;
  format: Format;
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

function integer(value: string, context: string, min: number): number {
  const n = allDigits(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(context, `'${value}' is not a whole number >= ${min}`);
  return n;
}

/** A slot count: 1..MAX_SLOTS. */
function slotCount(value: string, context: string): number {
  const n = integer(value, context, 1);
  if (n > MAX_SLOTS) throw new UsageError(context, `'${value}' is more slots than the maximum, ${MAX_SLOTS}`);
  return n;
}

export function seconds(value: string, context: string): number {
  const n = isDecimal(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isFinite(n) || n < 0) throw new UsageError(context, `'${value}' is not a number of seconds >= 0`);
  return n;
}

const truthy = (v: string | undefined) => !!v && /^(1|true|yes)$/i.test(v.trim());

export function parseOptions(argv: string[], env: Record<string, string | undefined>): Options {
  const { values: v, positionals, command: cmd } = tokenize(argv);
  const given = (k: Key) => v[k] !== undefined;
  const str = (k: Key) => v[k] as string | undefined;

  if (given("help")) return blank("help");
  if (given("version")) return blank("version");

  const modes: Mode[] = [];
  for (const m of ["check", "done", "list"] as const) if (given(m)) modes.push(m);
  if (cmd) modes.push("exec");
  if (modes.length > 1) throw new UsageError(modes.map((m) => `--${m}`).join(" and "), "cannot be used together");
  const mode: Mode = cmd ? "exec" : (modes[0] ?? "acquire");

  if (positionals.length > 1) throw new UsageError(positionals[1]!, "unexpected argument (one NAME only; commands go after --exec)");
  if (cmd && cmd.length === 0) throw new UsageError("--exec", "needs a command");

  const only = (k: Key, allowed: Mode[], what: string) => {
    if (given(k) && !allowed.includes(mode)) throw new UsageError(`--${k}`, `only makes sense ${what}`);
  };
  only("all", ["list"], "with --list");
  only("stale-only", ["list"], "with --list");
  only("format", ["list"], "with --list");
  only("owner", ["acquire"], "when acquiring for the caller (without --exec, --check, --done or --list)");
  only("timeout", ["acquire", "exec", "done"], "when acquiring or with --done");
  only("conflict-exit-code", ["acquire", "exec"], "when acquiring (without --check, --done or --list)");
  if (given("all") && given("stale-only")) throw new UsageError("--all and --stale-only", "cannot be used together");
  if (given("allowMultiple") && given("onePerCPU")) throw new UsageError("--allowMultiple and --onePerCPU", "cannot be used together");
  if (given("excludeCPUs") && !given("onePerCPU")) throw new UsageError("--excludeCPUs", "only makes sense with --onePerCPU");

  let slots = 1;
  if (given("allowMultiple")) slots = slotCount(str("allowMultiple")!, "--allowMultiple");
  if (given("onePerCPU")) {
    const exclude = given("excludeCPUs") ? integer(str("excludeCPUs")!, "--excludeCPUs", 0) : 0;
    // A machine with more CPUs than MAX_SLOTS gets the maximum: -c names no number to refuse.
    slots = Math.min(MAX_SLOTS, Math.max(1, onlineCpus() - exclude));
  }

  let preferredSlot: number | undefined;
  if (env.WAITLOCK_SLOT !== undefined && env.WAITLOCK_SLOT !== "" && (mode === "acquire" || mode === "exec")) {
    preferredSlot = integer(env.WAITLOCK_SLOT.trim(), "WAITLOCK_SLOT", 0);
    if (preferredSlot >= slots)
      throw new UsageError("WAITLOCK_SLOT", `slot ${preferredSlot} does not exist: lock has ${slots} slot${slots === 1 ? "" : "s"} (0..${slots - 1})`);
  }

  let timeout: number | null = null;
  if (given("timeout")) timeout = seconds(str("timeout")!, "--timeout");
  else if (env.WAITLOCK_TIMEOUT !== undefined && env.WAITLOCK_TIMEOUT.trim() !== "" && (mode === "acquire" || mode === "exec"))
    timeout = seconds(env.WAITLOCK_TIMEOUT, "WAITLOCK_TIMEOUT");

  const format = (str("format") ?? "human") as Format;
  if (!FORMATS.includes(format)) throw new UsageError("--format", `'${format}' is not one of ${FORMATS.join(", ")}`);

  const facility = (str("syslog-facility") ?? "daemon").toLowerCase();
  if (!(FACILITIES as readonly string[]).includes(facility))
    throw new UsageError("--syslog-facility", `'${str("syslog-facility")}' is not a syslog facility (daemon, user, local0..local7, ...)`);

  const lockDir = given("lock-dir") ? str("lock-dir") : env.WAITLOCK_DIR || undefined;
  if (lockDir === "") throw new UsageError("--lock-dir", "must not be empty");

  const recordForm = (env.WAITLOCK_RECORD?.trim().toLowerCase() || "binary") as RecordForm;
  if (recordForm !== "binary" && recordForm !== "text") throw new UsageError("WAITLOCK_RECORD", `'${env.WAITLOCK_RECORD}' is not binary or text`);

  let owner: number | undefined;
  if (given("owner")) owner = integer(str("owner")!, "--owner", 1);

  let conflictExitCode: number | undefined;
  if (given("conflict-exit-code")) {
    conflictExitCode = integer(str("conflict-exit-code")!, "--conflict-exit-code", 1);
    if (conflictExitCode > 255) throw new UsageError("--conflict-exit-code", `'${conflictExitCode}' is not an exit status (1-255)`);
  }

  const name = positionals[0] === undefined ? undefined : validateName(positionals[0]);

  return {
    mode,
    name,
    command: cmd,
    slots,
    preferredSlot,
    timeout,
    conflictExitCode,
    lockDir,
    owner,
    format,
    all: given("all"),
    staleOnly: given("stale-only"),
    quiet: given("quiet"),
    verbose: given("verbose") || truthy(env.WAITLOCK_DEBUG),
    syslog: given("syslog"),
    facility,
    recordForm,
    poll: truthy(env.WAITLOCK_POLL),
  };
}

function blank(mode: Mode): Options {
  return { mode, slots: 1, timeout: null, format: "human", all: false, staleOnly: false, quiet: false, verbose: false, syslog: false, facility: "daemon", recordForm: "binary", poll: false };
}
