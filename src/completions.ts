// Shell completions for bash, zsh and fish, generated from the option table the CLI parses
// with (src/options.ts), so that they cannot drift from it.
//   bun src/completions.ts DIR   writes DIR/waitlock.bash, DIR/_waitlock, DIR/waitlock.fish
import type { ArgDef } from "citty";
import { mkdirSync, writeFileSync } from "node:fs";
import { FACILITIES, FORMATS, args, spellings } from "./options";

interface Option {
  key: string;
  long: string[];
  short?: string;
  takesValue: boolean;
  /** the value may be left out ("[SECONDS]"): the next word may as well be a NAME */
  optionalValue: boolean;
  description: string;
  /** what a value can be: a fixed list, a directory, any file, a PID, or anything */
  values: readonly string[] | "dir" | "file" | "pid" | "command" | "any";
}

function valuesOf(key: string): Option["values"] {
  switch (key) {
    case "format":
      return FORMATS;
    case "syslog-facility":
      return FACILITIES;
    case "lock-dir":
      return "dir";
    case "file":
      return "file";
    case "owner":
      return "pid";
    case "exec":
      return "command";
    default:
      return "any";
  }
}

export function options(): Option[] {
  const byKey = new Map<string, Option>();
  for (const [spelling, key] of spellings()) {
    const def = (args as Record<string, ArgDef>)[key]!;
    const o = byKey.get(key) ?? {
      key,
      long: [],
      takesValue: def.type !== "boolean",
      optionalValue: "valueHint" in def && def.valueHint?.startsWith("[") === true,
      description: def.description ?? "",
      values: valuesOf(key),
    };
    if (spelling.startsWith("--")) o.long.push(spelling.slice(2));
    else o.short = spelling.slice(1);
    byKey.set(key, o);
  }
  return [...byKey.values()];
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

export function bash(): string {
  const opts = options();
  const words = opts.flatMap((o) => [...o.long.map((l) => `--${l}`), ...(o.short ? [`-${o.short}`] : [])]);
  const cases = opts
    .filter((o) => o.takesValue && !o.optionalValue && o.key !== "exec")
    .map((o) => {
      const pattern = [...o.long.map((l) => `--${l}`), ...(o.short ? [`-${o.short}`] : [])].join("|");
      const reply =
        o.values === "dir"
          ? `COMPREPLY=($(compgen -d -- "$cur"))`
          : o.values === "file"
            ? `COMPREPLY=($(compgen -f -- "$cur"))`
            : o.values === "pid"
              ? `COMPREPLY=($(compgen -W "$(ps -eo pid= 2>/dev/null)" -- "$cur"))`
              : Array.isArray(o.values)
                ? `COMPREPLY=($(compgen -W ${quote((o.values as string[]).join(" "))} -- "$cur"))`
                : `COMPREPLY=()`;
      return `    ${pattern}) ${reply}; return ;;`;
    })
    .join("\n");
  return `# bash completion for waitlock (generated from src/options.ts)
_waitlock() {
  local cur prev i
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in
    --exec|-e)
      if declare -F _command_offset >/dev/null; then _command_offset $((i + 1)); else COMPREPLY=($(compgen -c -- "$cur")); fi
      return ;;
    esac
  done
  case $prev in
${cases}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W ${quote(words.join(" "))} -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(waitlock --list -f csv 2>/dev/null | tail -n +2 | cut -d, -f1 | sort -u)" -- "$cur"))
  fi
}
complete -F _waitlock waitlock
`;
}

export function zsh(): string {
  const specs = options().flatMap((o) => {
    const action =
      o.key === "exec"
        ? "*::command:_normal"
        : o.values === "dir"
          ? ":directory:_files -/"
          : o.values === "file"
            ? ":file:_files"
            : o.values === "pid"
              ? ":process ID:_pids"
              : Array.isArray(o.values)
                ? `:${o.key}:(${(o.values as string[]).join(" ")})`
                : o.optionalValue
                  ? `::${o.key}: `
                  : o.takesValue
                    ? `:${o.key}: `
                    : "";
    const desc = o.description.replaceAll("[", "\\[").replaceAll("]", "\\]").replaceAll("'", "'\\''").replaceAll(":", "\\:");
    const names = [...o.long.map((l) => `--${l}`), ...(o.short ? [`-${o.short}`] : [])];
    const eq = o.takesValue && !o.optionalValue && o.key !== "exec" ? "=" : "";
    return names.map((n) => `    '${n.startsWith("--") ? n + eq : n}[${desc}]${action}'`);
  });
  return `#compdef waitlock
# zsh completion for waitlock (generated from src/options.ts)
_arguments -s -S \\
${specs.join(" \\\n")} \\
    '1:lock name: '
`;
}

export function fish(): string {
  const lines = options().map((o) => {
    const parts = ["complete -c waitlock"];
    for (const l of o.long) parts.push(`-l ${l}`);
    if (o.short) parts.push(`-s ${o.short}`);
    if (o.key === "exec") parts.push("-x -a '(__fish_complete_subcommand --fcs-skip=1)'");
    else if (o.values === "dir") parts.push("-r -f -a '(__fish_complete_directories)'");
    else if (o.values === "file") parts.push("-r -F");
    else if (o.values === "pid") parts.push("-x -a '(__fish_complete_pids)'");
    else if (Array.isArray(o.values)) parts.push(`-x -a ${quote((o.values as string[]).join(" "))}`);
    else if (o.takesValue && !o.optionalValue) parts.push("-r");
    parts.push(`-d ${quote(o.description)}`);
    return parts.join(" ");
  });
  return `# fish completion for waitlock (generated from src/options.ts)
complete -c waitlock -f
${lines.join("\n")}
`;
}

export const FILES = { "waitlock.bash": bash, _waitlock: zsh, "waitlock.fish": fish };

if (import.meta.main) {
  const dir = process.argv[2];
  if (!dir) throw new Error("usage: bun src/completions.ts DIR");
  mkdirSync(dir, { recursive: true });
  for (const [file, generate] of Object.entries(FILES)) writeFileSync(`${dir}/${file}`, generate());
}
