// waitlock on a real terminal: script(1) runs a command on a fresh pseudo-terminal and
// copies what it printed there; tmux keeps a terminal whose screen a test can read while
// the program runs. .ci/run installs both; elsewhere a test that needs one is skipped with
// a line saying why, and under WAITLOCK_TEST_STRICT=1 (.ci/run) a missing one fails instead.
import { run, track, type Result, type RunOptions } from "./helpers";
import { STRICT } from "./needs";

export const hasScript = Bun.which("script") !== null;
export const hasTmux = Bun.which("tmux") !== null;

/** Skip (visibly) unless `tool` is installed; under CI, fail. `what`: the tests that need it. */
export function needs(tool: string, have: boolean, what = "tests that need a real terminal"): boolean {
  if (have) return true;
  if (STRICT) throw new Error(`${tool} is missing, and WAITLOCK_TEST_STRICT=1 runs every test (.ci/run installs it)`);
  console.warn(`skipped: ${tool} is not installed (${what})`);
  return false;
}

const shQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Runs `cmd` with stdin, stdout and stderr on a new terminal; `stdout` of the result is
 * everything shown there (line ends as the terminal sends them: \r\n).
 */
export function onTerminal(cmd: string[], opts: RunOptions = {}): Promise<Result> {
  // -e: script exits with the command's status; -q: no "Script started" lines.
  return run(["script", "-qec", cmd.map(shQuote).join(" "), "/dev/null"], opts);
}

let servers = 0;

/** A tmux server of its own (its socket in `dir`), with one window `columns` wide. */
export function tmuxSession(dir: string, columns = 100) {
  const socket = `${dir}/tmux-${++servers}.sock`;
  const tmux = (...args: string[]) => run(["tmux", "-S", socket, ...args]);
  return {
    /** Starts `cmd` (a shell command line) in the window; the window stays when it exits. */
    async start(cmd: string, env: Record<string, string> = {}): Promise<void> {
      const exports = Object.entries(env).map(([k, v]) => `export ${k}=${shQuote(v)}; `).join("");
      const r = await tmux("-f", "/dev/null", "new-session", "-d", "-x", String(columns), "-y", "10", `${exports}${cmd}; echo "[exit $?]"; sleep 600`);
      if (r.code !== 0) throw new Error(`tmux new-session: ${r.stderr}`);
      // The server left the client behind; it is ended after the test like any process.
      track(Number((await tmux("display-message", "-p", "#{pid}")).stdout.trim()));
    },
    /** The visible screen (with `history`, all that scrolled off too), line by line, without trailing blanks. */
    async screen(history = false): Promise<string[]> {
      const r = await tmux("capture-pane", "-p", ...(history ? ["-S", "-"] : []));
      return r.stdout.split("\n").map((l) => l.trimEnd());
    },
    /** Types `text` into the window, then Enter. */
    async type(text: string): Promise<void> {
      await tmux("send-keys", "-l", text);
      await tmux("send-keys", "Enter");
    },
    /** Presses keys by tmux's names for them (e.g. "C-c"). */
    async press(...keys: string[]): Promise<void> {
      await tmux("send-keys", ...keys);
    },
    /** A tmux format about the window, e.g. "#{alternate_on}" (1 while the program uses the alternate screen). */
    async info(format: string): Promise<string> {
      return (await tmux("display-message", "-p", format)).stdout.trim();
    },
    /** Makes the window `width` columns wide, as a user dragging the terminal's edge (the program gets SIGWINCH). */
    async resize(width: number): Promise<void> {
      const r = await tmux("resize-window", "-x", String(width));
      if (r.code !== 0) throw new Error(`tmux resize-window: ${r.stderr}`);
    },
    /** The PID of the window's shell. */
    async panePid(): Promise<number> {
      return Number((await tmux("display-message", "-p", "#{pane_pid}")).stdout.trim());
    },
    async kill(): Promise<void> {
      await tmux("kill-server");
    },
  };
}
