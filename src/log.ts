// Lines for humans on stderr: errors as `waitlock: CONTEXT: MESSAGE`, warnings as
// `waitlock: warning: CONTEXT: MESSAGE`, debug lines as `waitlock[PID]: DEBUG: ...`. consola/core keeps levels and the reporter fixes the
// format; it is loaded and set up on the first line printed, a cost (bench/TUNING.md) that
// a silent run of waitlock never pays.
import type { ConsolaInstance, LogObject } from "consola/core";
import { isatty } from "../ffi/libc";

const LEVEL = { silent: -999, error: 0, warn: 1, debug: 4 } as const;

let level: number = LEVEL.warn;
let instance: ConsolaInstance | undefined;

/**
 * Colour only for a person: `fd` is a terminal, NO_COLOR is unset or empty
 * (https://no-color.org) and TERM is not `dumb`.
 */
export function colourOn(fd: number): boolean {
  const env = process.env;
  return !env.NO_COLOR && env.TERM !== "dumb" && isatty(fd);
}

/**
 * Writes `text` to stderr at once. Not console.error: Bun colours that red on a terminal
 * whatever TERM and NO_COLOR say, and a line must be out before the next step runs.
 */
function toStderr(text: string): void {
  const { writeSync } = require("node:fs") as typeof import("node:fs");
  writeSync(2, `${text}\n`);
}

const red = (line: string) => (colourOn(2) ? `\x1b[31m${line}\x1b[0m` : line);

function emit(o: LogObject): void {
  const text = o.args.map(String);
  if (o.type === "debug") toStderr(`waitlock[${process.pid}]: DEBUG: ${text.join(" ")}`);
  else if (o.type === "warn") toStderr(`waitlock: warning: ${text.join(": ")}`);
  else toStderr(red(`waitlock: ${text.join(": ")}`));
}

function consola(): ConsolaInstance {
  if (!instance) {
    const { createConsola } = require("consola/core") as typeof import("consola/core");
    instance = createConsola({ level, throttle: 0, reporters: [{ log: emit }] });
  }
  return instance;
}

export function setVerbosity(opts: { quiet?: boolean; verbose?: boolean }): void {
  level = opts.quiet ? LEVEL.silent : opts.verbose ? LEVEL.debug : LEVEL.warn;
  if (instance) instance.level = level;
}

/** `waitlock: CONTEXT: MESSAGE`, unless --quiet. */
export function error(context: string, message: string): void {
  if (level >= LEVEL.error) consola().error(context, message);
}

/** A usage error: printed even with --quiet (a script must learn that it called us wrong). */
export function usageError(context: string, message: string): void {
  toStderr(red(`waitlock: ${context}: ${message}`));
}

/**
 * Is anybody reading? True with --verbose, or when stderr is a terminal and not --quiet.
 * Answers that are not failures (busy, what --done did) are told only then: a script's
 * `waitlock -t 0 NAME || ...` prints its own message, and its logs stay as they were.
 */
export function toPerson(): boolean {
  return level >= LEVEL.debug || (level >= LEVEL.error && isatty(2));
}

/** `waitlock: CONTEXT: MESSAGE` for a person (see toPerson), uncoloured: not a failure. */
export function notice(context: string, message: string): void {
  if (toPerson()) toStderr(`waitlock: ${context}: ${message}`);
}

/** Is the wait status line wanted: a terminal on stderr, not --quiet, not --verbose (whose lines it would garble)? */
export function statusLineWanted(): boolean {
  return level >= LEVEL.error && level < LEVEL.debug && isatty(2);
}

/**
 * `waitlock: warning: CONTEXT: MESSAGE`, unless --quiet: something the user should know went
 * wrong without failing the run (a record not written, waiting by a slower mechanism). Say
 * it once per run and event; details belong in debug lines.
 */
export function warn(context: string, message: string): void {
  if (level >= LEVEL.warn) consola().warn(context, message);
}

export function debug(message: string): void {
  if (level >= LEVEL.debug) consola().debug(withoutPasswords(message));
}

/** `scheme://user:password@...` with the password replaced by `***` (a command line may hold a --backend URL). */
export function withoutPasswords(text: string): string {
  // A scheme starts where no scheme character precedes it: tried once per run of letters,
  // not at each of its characters (which took time in the square of a long run's length).
  return text.replace(/(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/gi, "$1***@");
}
