// libpq's password file (https://www.postgresql.org/docs/current/libpq-pgpass.html), so that
// a password need not be written into the --backend URL or the environment.
import { debug } from "../../log";

/** One line split at unescaped colons, with `\:` and `\\` unescaped. */
function fields(line: string): string[] {
  const out: string[] = [];
  let field = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "\\" && i + 1 < line.length) field += line[++i];
    else if (c === ":") {
      out.push(field);
      field = "";
    } else field += c;
  }
  out.push(field);
  return out;
}

/**
 * The password for host, port, database and user from PGPASSFILE or ~/.pgpass: the first
 * line that matches (`*` matches anything). As libpq does, a file that the group or others
 * may read is ignored (a debug line says so). undefined when there is none.
 */
export function passwordFromFile(host: string, port: number, database: string, user: string, env: Record<string, string | undefined> = process.env): string | undefined {
  // Loaded here, not with the backend: a URL with a password never needs them.
  const { readFileSync, statSync } = require("node:fs") as typeof import("node:fs");
  const { homedir } = require("node:os") as typeof import("node:os");
  const file = env.PGPASSFILE || `${env.HOME || homedir()}/.pgpass`;
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) return undefined;
    if (st.mode & 0o077) {
      debug(`password file ${file} ignored: the group or others may read it (chmod 0600)`);
      return undefined;
    }
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const wanted = [host, String(port), database, user];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.trim()) continue;
    const f = fields(line.replace(/\r$/, ""));
    if (f.length < 5) continue;
    if (wanted.every((w, i) => f[i] === "*" || f[i] === w)) {
      debug(`password for ${user}@${host}:${port}/${database} from ${file}`);
      return f.slice(4).join(":");
    }
  }
  return undefined;
}
