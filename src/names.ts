import { isatty, readSome } from "../ffi/libc";
import { UsageError } from "./errors";
import { MAX_NAME } from "./limits";

export { MAX_NAME };

/** [A-Za-z0-9._-], tested without a regex (compiling one costs start-up). */
const nameChar = (c: string) => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c === "." || c === "_" || c === "-";

/** Only name characters (a loop: `every` is compiled from source on its first call). */
export function onlyNameChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!nameChar(s[i]!)) return false;
  return true;
}
const STDIN_LIMIT = 256;

/** `s` for a message: control characters, quotes and backslashes escaped as in JSON. */
const shown = (s: string) => JSON.stringify(s).slice(1, -1);

/**
 * NAME when it is a valid lock name (1 to MAX_NAME letters, digits, '.', '_', '-'; not '.'
 * or '..'). Throws UsageError (3) naming `context`, the name shown with its control
 * characters escaped, so that the message stays one line.
 */
export function validateName(name: string, context = "lock name"): string {
  if (name.length === 0) throw new UsageError(context, "must not be empty");
  if (name.length > MAX_NAME) throw new UsageError(context, `'${shown(name.slice(0, 32))}...' is longer than ${MAX_NAME} characters`);
  if (name === "." || name === "..") throw new UsageError(context, `'${name}' is not a valid lock name`);
  if (!onlyNameChars(name)) throw new UsageError(context, `'${shown(name)}' may contain only letters, digits, '.', '_' and '-'`);
  return name;
}

/**
 * The first line of stdin. Read one byte at a time so that whatever follows the line is
 * left in a pipe for the command run under --exec.
 */
export function readNameFromStdin(): string {
  if (isatty(0)) throw new UsageError("lock name", "missing (give NAME or pipe it on stdin)");
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  while (bytes.length < STDIN_LIMIT) {
    const n = readSome(0, one);
    if (n <= 0) break;
    if (one[0] === 0x0a) return validateName(decode(bytes).trim(), "lock name from stdin");
    bytes.push(one[0]!);
  }
  if (bytes.length >= STDIN_LIMIT) throw new UsageError("lock name from stdin", `first line is longer than ${MAX_NAME} characters`);
  const name = decode(bytes).trim();
  if (!name) throw new UsageError("lock name", "missing (give NAME or pipe it on stdin)");
  return validateName(name, "lock name from stdin");
}

function decode(bytes: number[]): string {
  return new TextDecoder().decode(new Uint8Array(bytes));
}
