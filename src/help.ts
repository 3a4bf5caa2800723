// --help, rendered from the option table (src/options.ts) to fit the terminal, and the
// nearest option for a misspelt one. citty's renderUsage right-aligns the option names,
// prints `NAME=<NAME>` and `--exec=<CMD [ARG...]>`, and runs past 80 columns; the table is
// citty's, the layout is the one of GNU and util-linux help. Loaded only for --help and
// for an unknown option.
import type { ArgDef } from "citty";
import { closestMatch } from "leven";
import { UsageError, type UnknownOptionError } from "./errors";
import { args, command, kebab } from "./options";

const FORMS = [
  "[OPTIONS] NAME",
  "[OPTIONS] NAME --exec CMD [ARG...]",
  "--check [-m N | -c [-x N]] NAME",
  "--done NAME",
  "--list [-f FORMAT] [--all | --stale-only] [NAME]",
  "--list [-f FORMAT] [--all | --stale-only] --file PATH",
  "[OPTIONS] --file PATH [--exec CMD [ARG...]]",
  "[-s] [-t SECONDS] --fd N",
  "--fd N --unlock",
  "--serve",
  "--shell-init bash|zsh",
  "--list --watch [SECONDS] [-f FORMAT -o FILE] [NAME]",
];

const EXIT_STATUS: readonly (readonly [string, string])[] = [
  ["0", "Success"],
  ["1", "Busy (--check: every slot is held; --done: nobody held NAME)"],
  ["2", "Timed out (--check: cannot tell; --done: holders did not let go in time)"],
  ["3", "Usage error"],
  ["4", "System error"],
  ["5", "Permission denied"],
  ["6", "Lock directory unusable"],
  ["75", "Temporary failure: try again"],
  ["126, 127", "--exec could not run, or could not find, the command"],
  ["other", "The status of the command run by --exec (128+N when killed by signal N)"],
];

/** Every environment variable waitlock reads or sets (test/help.test.ts checks the list against src/). */
export const ENVIRONMENT: readonly (readonly [string, string])[] = [
  ["WAITLOCK_DIR", "Lock directory (--lock-dir wins)"],
  ["WAITLOCK_BACKEND", "Network engine URL, as --backend (which wins; -d too)"],
  ["WAITLOCK_TIMEOUT", "Default --timeout, in seconds"],
  ["WAITLOCK_DEBUG", "1, true or yes: like --verbose"],
  ["WAITLOCK_SLOT", "Slot to try first (0-based); set for the command run by --exec to the slot it holds"],
  ["WAITLOCK_DESCRIPTOR", "Set for the command run by --exec: the lock NAME"],
  ["WAITLOCK_FD", "Set for the command run by --exec: the number of the locked descriptor"],
  ["WAITLOCK_TOKEN", "Set for the command run by --exec on a backend: the lease's fencing token"],
  ["WAITLOCK_RECORD", "binary (default) or text: the form of the holder's record"],
  ["WAITLOCK_POLL", "1, true or yes: wait by polling, without inotify or pidfd"],
  ["NO_COLOR", "Set and not empty: no colour (neither with TERM=dumb nor off a terminal)"],
];

/** The widest help we print, even on a wider terminal: longer lines are hard to read. */
const MAX_WIDTH = 100;
/** A label wider than this puts its description on the next line. */
const MAX_LABEL = 26;

/**
 * Columns to fit the help into: COLUMNS when it is a number, else the terminal's width on
 * stdout, else 80; at most 100, at least 70 (the usage lines need that much).
 */
export function helpWidth(env: Record<string, string | undefined>, terminalColumns: number | undefined): number {
  const fromEnv = Number(env.COLUMNS);
  const columns = Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : terminalColumns || 80;
  return Math.max(70, Math.min(columns, MAX_WIDTH));
}

/** `text` wrapped at word boundaries to `width` columns, each line indented by `indent` spaces. */
function wrap(text: string, width: number, indent: number): string[] {
  const pad = " ".repeat(indent);
  return Bun.wrapAnsi(text, width - indent, { hard: true, trim: true })
    .split("\n")
    .map((line) => pad + line);
}

/** `-m, --allow-multiple N` (options without a short form are indented to line up). */
function label(key: string, def: ArgDef): string {
  const alias = "alias" in def && def.alias ? (Array.isArray(def.alias) ? def.alias[0] : def.alias) : undefined;
  const hint = def.type === "boolean" ? "" : ` ${"valueHint" in def && def.valueHint ? def.valueHint : "VALUE"}`;
  return `${alias ? `-${alias}, ` : "    "}--${kebab(key)}${hint}`;
}

/** Two columns: labels, then their descriptions wrapped beside them. */
function table(rows: readonly (readonly [string, string])[], width: number, bold: (s: string) => string): string[] {
  const fitting = rows.filter(([l]) => l.length <= MAX_LABEL);
  const column = 2 + Math.max(...fitting.map(([l]) => l.length)) + 2;
  const out: string[] = [];
  for (const [l, description] of rows) {
    const lines = wrap(description, width, column);
    if (l.length + 4 <= column) out.push(`  ${bold(l)}${" ".repeat(column - 2 - l.length)}${lines[0]!.trimStart()}`, ...lines.slice(1));
    else out.push(`  ${bold(l)}`, ...lines);
  }
  return out;
}

/**
 * The whole --help text for a terminal `width` columns wide (every line shorter than
 * that), with bold headings and option names when `colour`.
 */
export function helpText(width: number, colour: boolean): string {
  const bold = (s: string) => (colour ? `\x1b[1m${s}\x1b[0m` : s);
  const fit = width - 1;
  const options: [string, string][] = [];
  for (const [key, def] of Object.entries(args as Record<string, ArgDef>)) {
    if (def.type !== "positional") options.push([label(key, def), def.description ?? ""]);
  }
  return [
    ...FORMS.map((form, i) => `${i === 0 ? bold("Usage:") : "      "} waitlock ${form}`),
    "       echo NAME | waitlock [OPTIONS] ...",
    "",
    ...wrap(command.meta.description, fit, 0),
    "",
    bold("Arguments:"),
    ...table([["NAME", args.name.description]], fit, bold),
    "",
    bold("Options:"),
    ...table(options, fit, bold),
    "",
    ...wrap("--option=value works too, and so do the camelCase spellings (--allowMultiple).", fit, 2),
    "",
    bold("Exit status:"),
    ...table(EXIT_STATUS, fit, (s) => s),
    "",
    bold("Environment:"),
    ...table(ENVIRONMENT, fit, (s) => s),
    "",
  ].join("\n");
}

/**
 * The option a misspelt `--flag` most likely meant (`--timout` -> `--timeout`), in its
 * kebab-case spelling; undefined when none is close. Short options get no guess.
 */
export function nearestOption(flag: string): string | undefined {
  if (!flag.startsWith("--")) return undefined;
  const word = flag.slice(2).toLowerCase();
  const keyOf = new Map<string, string>();
  for (const key of Object.keys(args)) {
    if (key === "name") continue;
    keyOf.set(key.toLowerCase(), key);
    keyOf.set(kebab(key), key);
  }
  const spellings = [...keyOf.keys()];
  const prefixed = new Set(spellings.filter((s) => word.length >= 3 && s.startsWith(word)).map((s) => keyOf.get(s)!));
  if (prefixed.size === 1) return `--${kebab([...prefixed][0]!)}`;
  const match = closestMatch(word, spellings, { maxDistance: word.length <= 3 ? 1 : 2 });
  return match === undefined ? undefined : `--${kebab(keyOf.get(match)!)}`;
}

/** The usage error for an unknown option, with the nearest known one when there is one. */
export function explainUnknown(e: UnknownOptionError): UsageError {
  const near = nearestOption(e.context);
  return new UsageError(e.context, near ? `unknown option; did you mean ${near}?` : e.message);
}
