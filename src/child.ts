// The command of --exec as a child process: started with the caller's process state, in a
// process group of its own, given the terminal when waitlock has it, and sent every signal
// meant for it exactly once.
//
// Its own group is what makes "once" hold: a signal sent to waitlock's process group (kill
// -- -PGID, a service manager stopping the group) reaches waitlock alone, which forwards it;
// the terminal's ^C and ^Z reach the command's group directly, waitlock not being in the
// foreground group then. waitlock plays the part of a job-control shell for that group: when
// the command stops, waitlock takes the terminal back and stops its own group, so that the
// caller's shell sees the job stopped; when it is continued (fg, bg), it continues the
// command, and hands it the terminal again if the shell gave it to waitlock.
import {
  E,
  clearCloseOnExec,
  close,
  foregroundGroup,
  ignoreSignal,
  kill,
  openControllingTerminal,
  platform,
  processGroup,
  setFileLimit,
  setForegroundGroup,
  signalIgnored,
  prepareSpawnInGroup,
  signalNumber,
  strerror,
  waitChild,
  type SignalMask,
} from "../ffi/libc";
import { EXIT, WaitlockError } from "./errors";
import { debug } from "./log";
import { sysError } from "./syserror";

/** The signals that end a waitlock process that holds or waits but runs no command: a terminal's ^C, a service manager's stop, a hang-up. */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * STOP_SIGNALS but those this process ignores (the caller's `trap '' INT`, a background
 * job's SIGINT): a handler would make them count again.
 */
export function heededStopSignals(): (typeof STOP_SIGNALS)[number][] {
  return STOP_SIGNALS.filter((s) => !signalIgnored(signalNumber(s)!));
}

/**
 * Sends `signal` to this process with its default action, as if no handler had been
 * installed: a waiter that first withdrew its request is then seen by its shell to have
 * died of the signal, and a script stops there (bash goes on after a command that merely
 * exits 130). Returns only should the signal not end the process: with the status to exit
 * with instead, 128 + the signal's number.
 */
export function raiseDefault(signal: (typeof STOP_SIGNALS)[number]): number {
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  return 128 + signalNumber(signal)!;
}

/**
 * The signals waitlock handles while the command runs. Sent to waitlock, SIGTERM, SIGINT,
 * SIGHUP and SIGQUIT go to the command's process group, as a terminal or a group-wide kill
 * would send them; SIGUSR1 and SIGUSR2 are messages for the command alone (SPEC "--exec").
 */
const HANDLED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTSTP", "SIGCONT", "SIGCHLD"] as const;

export interface CommandSpec {
  /** the file to run: resolved in PATH already */
  path: string;
  argv: string[];
  /** the variables of waitlock's environment (which the command inherits) it does not get: start() may set them */
  unset: string[];
  /** descriptors above 2 the command inherits: the caller's (the locked one is given to start()) */
  inherit: number[];
  /** RLIMIT_NOFILE to hand down instead of this process's own */
  fileLimit?: { soft: number; hard: number };
  /** the signal mask to hand down: the caller's */
  mask: SignalMask;
}

/** The command's exit status, or 128 + N when signal N killed it, once it has ended. */
export interface Ended {
  then(resolve: (status: number) => void): void;
}

/** The terminal waitlock may hand to the command: its controlling terminal, or -1. */
function controllingTerminal(): number {
  for (let fd = 0; fd < 3; fd++) if (foregroundGroup(fd) >= 0) return fd;
  const tty = openControllingTerminal();
  if (tty >= 0 && foregroundGroup(tty) >= 0) return tty;
  if (tty >= 0) close(tty);
  return -1;
}

/**
 * 127: `command` is not found, as the shell would say it, with a hint for `VAR=value cmd`
 * (only a shell understands that).
 */
export function notFound(command: string): WaitlockError {
  const hint = command.includes("=") && !command.includes("/") ? ` (to set a variable for the command, use: --exec env ${command} ...)` : "";
  return new WaitlockError(EXIT.NOT_FOUND, command, `command not found${hint}`);
}

function isDirectory(path: string): boolean {
  const { statSync } = require("node:fs") as typeof import("node:fs");
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** 127 not found, 126 cannot be executed; out of descriptors or processes is waitlock's own failure (75). */
function cannotStart(command: string, errno: number): WaitlockError {
  const n = -errno;
  if (n === E.ENOENT) return notFound(command);
  if (n === E.EMFILE || n === E.ENFILE || n === E.EAGAIN) return sysError(command, errno, "cannot start the command");
  if (n === E.EACCES && isDirectory(command)) return new WaitlockError(EXIT.CANNOT_EXECUTE, command, "cannot execute: is a directory");
  return new WaitlockError(EXIT.CANNOT_EXECUTE, command, `cannot execute: ${strerror(n)}`);
}

/** What startCommand needs to know of waitlock's own situation (see commandSetting). */
export interface Setting {
  sig: Record<string, number>;
  /** waitlock's process group */
  own: number;
  /** started as a background job by a shell without job control */
  background: boolean;
  /** the terminal the command may be handed, or -1 */
  tty: number;
}

/**
 * waitlock's process group, terminal and job state, looked at before the lock is won: none
 * of it changes while waiting, and the moment between winning the lock and starting the
 * command stays short.
 */
export function commandSetting(): Setting {
  const sig = platform.signals();
  // A job that a shell without job control runs in the background starts with SIGINT and
  // SIGQUIT ignored, and leaves the terminal to that shell. (The runtime replaces an ignored
  // SIGINT by a handler of its own when a terminal is on stdio: SIGQUIT tells.)
  const background = signalIgnored(sig.SIGQUIT!);
  return { sig, own: processGroup(), background, tty: background ? -1 : controllingTerminal() };
}

/** A command made ready to start (prepareCommand). */
export interface ReadyCommand {
  /**
   * Starts it, with `vars` (KEY=VALUE) added to its environment and the locked descriptor
   * `fd` inherited besides the caller's. Returns its PID and its end, to be awaited. Throws,
   * with nothing started, 127 when it is not found, 126 when it cannot be executed, 75 when
   * out of descriptors or processes.
   */
  start(vars: string[], fd: number | undefined): { pid: number; ended: Ended };
}

/**
 * Makes the command (see the header) ready to start in `setting`: whatever does not need the
 * lock is done before the wait for it (encoding argv and the environment, the spawn's
 * attributes, the caller's descriptors), so that winning the lock and starting the command
 * stay close.
 */
export function prepareCommand(spec: CommandSpec, { sig, own, background, tty }: Setting): ReadyCommand {
  let pid = 0;
  let status: number | undefined;
  let resolve: ((status: number) => void) | undefined;
  // Signal handlers do not keep the event loop alive while the command runs: this does.
  // (Made before the wait: every way out of waitlock ends in process.exit.)
  const alive = setInterval(() => {}, 2 ** 31 - 1);

  // Set while the job is stopped: waitlock stopped its group (or itself) after the command.
  let jobStopped = false;

  /** Continues the command, in the foreground when the shell gave waitlock the terminal. */
  const resume = () => {
    jobStopped = false;
    if (tty >= 0 && foregroundGroup(tty) === own) setForegroundGroup(tty, pid);
    kill(-pid, sig.SIGCONT!);
  };

  const stopped = (signal: number) => {
    if (tty < 0) return;
    const foreground = foregroundGroup(tty);
    // It used the terminal in the moment before waitlock handed it over; or its stop was
    // seen only now that the job runs again.
    if (((signal === sig.SIGTTIN || signal === sig.SIGTTOU) && foreground === pid) || jobStopped) return resume();
    debug(`the command stopped (signal ${signal}): stopping waitlock's process group ${own} too`);
    jobStopped = true;
    if (foreground === pid) setForegroundGroup(tty, own);
    kill(-own, signal);
  };

  const reap = () => {
    for (let state = waitChild(pid); state; state = waitChild(pid)) {
      if ("stopped" in state) stopped(state.stopped);
      else {
        if (tty >= 0 && foregroundGroup(tty) === pid) setForegroundGroup(tty, own);
        status = "exited" in state ? state.exited : 128 + state.killed;
        clearInterval(alive);
        resolve?.(status);
        return;
      }
    }
  };

  const onSignal = (name: (typeof HANDLED)[number]) => {
    if (pid <= 0) return;
    if (name === "SIGCHLD") reap();
    else if (name === "SIGCONT") resume();
    else if (name === "SIGTSTP") {
      jobStopped = true;
      kill(-pid, sig.SIGTSTP!);
      kill(process.pid, sig.SIGSTOP!);
    } else {
      const target = name === "SIGUSR1" || name === "SIGUSR2" ? pid : -pid;
      debug(`forwarding ${name} to ${target < 0 ? "process group" : "process"} ${pid}`);
      kill(target, sig[name]!);
    }
  };
  // SIGCHLD and SIGCONT are handled from before the wait: their default actions (nothing;
  // continue) are what the handler does while no command runs. The others go in when the
  // command starts, so that until then they end a waiter as they would without waitlock.
  // A signal the caller ignores stays ignored, here and in the command.
  const later: (typeof HANDLED)[number][] = [];
  for (const name of HANDLED) {
    if (name === "SIGCHLD" || name === "SIGCONT") process.on(name, onSignal);
    else if (!(background && name === "SIGINT") && !signalIgnored(sig[name]!)) later.push(name);
  }

  for (const fd of spec.inherit) clearCloseOnExec(fd);
  // exec itself resets every handled signal, and leaves ignored ones ignored: the caller's
  // (kept so above). Reset besides: SIGPIPE and SIGXFSZ, which the runtime ignores for
  // itself, and the signals libc reserves.
  const spawn = prepareSpawnInGroup(spec.path, spec.argv, spec.unset, [sig.SIGPIPE!, sig.SIGXFSZ!, ...platform.spawn.reserved], spec.mask);
  const ended: Ended = {
    then(r) {
      if (status === undefined) resolve = r;
      else r(status);
    },
  };

  return {
    start(vars, fd) {
      if (background) ignoreSignal(sig.SIGINT!);
      // In place before the command exists: handlers run on a later turn of the event loop,
      // by which time it has been spawned. (A signal before this kills waitlock while no
      // command runs: the kernel frees the slot.)
      for (const name of later) process.on(name, onSignal);
      if (fd !== undefined) clearCloseOnExec(fd);
      if (spec.fileLimit) setFileLimit(spec.fileLimit.soft, spec.fileLimit.hard);
      const started = spawn(vars);
      if (started < 0) {
        clearInterval(alive);
        throw cannotStart(spec.argv[0]!, started);
      }
      pid = started;
      if (tty >= 0 && foregroundGroup(tty) === own) setForegroundGroup(tty, pid);
      // A first look at the command (it may have ended or stopped already), through the
      // runtime's dispatch of SIGCHLD: that path is compiled the first time a signal comes,
      // and is then ready for the command's end (bench/TUNING.md).
      process.emit("SIGCHLD", "SIGCHLD");
      return { pid, ended };
    },
  };
}
