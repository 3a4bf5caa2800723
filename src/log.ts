// Lines for humans on stderr: errors as `waitlock: CONTEXT: MESSAGE`, debug lines as
// `waitlock[PID]: DEBUG: ...`. consola/core keeps levels; the reporter fixes the format.
import { createConsola, type LogObject } from "consola/core";

const LEVEL = { silent: -999, error: 0, debug: 4 } as const;

function emit(o: LogObject): void {
  const text = o.args.map(String);
  if (o.type === "debug") console.error(`waitlock[${process.pid}]: DEBUG: ${text.join(" ")}`);
  else console.error(`waitlock: ${text.join(": ")}`);
}

export const log = createConsola({ level: LEVEL.error, throttle: 0, reporters: [{ log: emit }] });

export function setVerbosity(opts: { quiet?: boolean; verbose?: boolean }): void {
  log.level = opts.quiet ? LEVEL.silent : opts.verbose ? LEVEL.debug : LEVEL.error;
}

export const debugging = (): boolean => log.level >= LEVEL.debug;

export function debug(message: string): void {
  if (log.level >= LEVEL.debug) log.debug(message);
}
