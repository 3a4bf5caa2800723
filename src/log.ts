// Lines for humans on stderr: errors as `waitlock: CONTEXT: MESSAGE`, warnings as
// `waitlock: warning: CONTEXT: MESSAGE`, debug lines as `waitlock[PID]: DEBUG: ...`. consola/core keeps levels and the reporter fixes the
// format; it is loaded and set up on the first line printed, a cost (~0.5 ms) that a
// silent run of waitlock never pays.
import type { ConsolaInstance, LogObject } from "consola/core";

const LEVEL = { silent: -999, error: 0, warn: 1, debug: 4 } as const;

let level: number = LEVEL.warn;
let instance: ConsolaInstance | undefined;

function emit(o: LogObject): void {
  const text = o.args.map(String);
  if (o.type === "debug") console.error(`waitlock[${process.pid}]: DEBUG: ${text.join(" ")}`);
  else if (o.type === "warn") console.error(`waitlock: warning: ${text.join(": ")}`);
  else console.error(`waitlock: ${text.join(": ")}`);
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

/**
 * `waitlock: warning: CONTEXT: MESSAGE`, unless --quiet: something the user should know went
 * wrong without failing the run (a record not written, waiting by a slower mechanism). Say
 * it once per run and event; details belong in debug lines.
 */
export function warn(context: string, message: string): void {
  if (level >= LEVEL.warn) consola().warn(context, message);
}

export function debug(message: string): void {
  if (level >= LEVEL.debug) consola().debug(message);
}
