// waitlock --shell-init bash|zsh: shell functions that take locks through one `--serve`
// coprocess per shell process, started on first use (protocol: modes/serve.ts).
//
// Each (sub)shell process has a coprocess of its own: bash closes a coprocess's pipes in
// subshells, and a coprocess shared by several processes would hand one's answer to
// another. The coprocess holds its locks for the shell process (--owner): released when
// that process exits, even if it exec'd its last command and so closed the pipe. It is
// disowned, so that a bare 'wait' does not wait for it, and it leaves the shell's process
// group, so that ^C reaches the shell alone: an acquire interrupted while it waits sends
// 'cancel', then the shell gets its SIGINT back. Only exported WAITLOCK_* variables are
// passed on, as the plain form sees only those; an exported WAITLOCK_SLOT (a preference)
// is never overwritten (in bash, one the functions set while set -a is on, and so
// exported, is theirs: updated, and not passed on as a preference). The coprocess starts without WAITLOCK_DIR or
// WAITLOCK_BACKEND, so that the shell's values when it asks count. A dead coprocess is
// reported once (its locks are gone with it); the next call starts a new one.
import type { Shell } from "../options";

/** `s` quoted for a POSIX shell: one word, whatever it holds. */
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

// WAITLOCK_BACKEND is passed on to be refused (3), as --backend is: a lock asked for on a
// network engine must never be taken in the lock directory instead.
const VARS = ["WAITLOCK_DIR", "WAITLOCK_TIMEOUT", "WAITLOCK_SLOT", "WAITLOCK_RECORD", "WAITLOCK_BACKEND"];

// The request's words (the positional parameters), %-encoded, appended to _waitlock_req
// (the same in bash and zsh). One match is cheaper than five substitutions, and most
// words need none: those that do are left to _waitlock_encode.
const WORDS = `  for v; do
    if [[ -z $v || $v == *[%\\ $'\\t\\n\\r']* ]]; then _waitlock_encode; fi
    _waitlock_req+=" $v"
  done`;

const ENCODE = `_waitlock_encode() {
  if [[ -z $v ]]; then v=%; return 0; fi
  v=\${v//\\%/%25}; v=\${v//\\ /%20}; v=\${v//$'\\t'/%09}; v=\${v//$'\\n'/%0A}; v=\${v//$'\\r'/%0D}
}`;

// How long an acquire's answer may take before a script's functions (bash and zsh) treat it
// as a wait: past it, they catch ^C to withdraw the wait (seeing the caller's trap costs a
// subshell, too much for every call); before it, a ^C ends a script as it would end flock(1).
const QUICK_SECONDS = "0.05";

// bash copies the whole body of a function each time it is called, and every local
// variable and command costs: waitlock_acquire and waitlock_release each hold the common
// path of a request (no call in between), and what is rare (starting the coprocess, a
// late or stray answer, waiting with ^C caught, a word to encode) lives in functions of its
// own (bench/TUNING.md).
const BASH_VERB = (verb: "acquire" | "release") => `waitlock_${verb}() {
  # The request's own ID: a trap that calls the functions while this one waits numbers its
  # requests on, and this one must still know which answer is its own.
  local _waitlock_id="w$((++_waitlock_n))" v id st slot text first=
  local _waitlock_req="$_waitlock_id ${verb}"
  if [[ $_waitlock_owner != "$BASHPID" || -z \${_WAITLOCK_PID-} ]] || ! kill -0 "$_WAITLOCK_PID" 2>/dev/null; then _waitlock_start || return; fi
${[...VARS].reverse().map((v) => `  if [[ -v ${v} && \${${v}@a} == *x*${v === "WAITLOCK_SLOT" ? ` && ( $${v} != "\${_waitlock_slot_set-}" || $- != *a* )` : ""} ]]; then set -- "${v}=$${v}" "$@"; fi`).join("\n")}
${WORDS}
  if ! printf '%s\\n' "$_waitlock_req" >&"\${_WAITLOCK[1]}"; then
    printf 'waitlock: cannot reach coprocess %s\\n' "$_waitlock_pid" >&2
    return 4
  fi
${
  verb === "acquire"
    ? `  # IDs are of two characters at least: the quick read takes the first alone (and one that
  # timed out may have taken it: _waitlock_answer goes on from $first).
  if [[ $- != *i* ]] && IFS= read -r -n 1 -t ${QUICK_SECONDS} -u "\${_WAITLOCK[0]}" first; then
    IFS=' ' read -r -u "\${_WAITLOCK[0]}" id st slot text && [[ $first$id == "$_waitlock_id" ]] || _waitlock_answer quick || return
  else
    _waitlock_answer wait || return
  fi`
    : `  IFS=' ' read -r -u "\${_WAITLOCK[0]}" id st slot text && [[ $id == "$_waitlock_id" ]] || _waitlock_answer plain || return`
}
  if [[ -n $text ]]; then printf 'waitlock: %s\\n' "$text" >&2; fi
${
  verb === "acquire"
    ? `  _waitlock_slot=$slot
  if [[ $st != 0 ]]; then return "$st"; fi
  # An exported WAITLOCK_SLOT is the caller's slot preference: left as it is.
  # (One the functions set themselves while set -a is on, and so exported, is theirs.)
  if [[ ! -v WAITLOCK_SLOT || \${WAITLOCK_SLOT@a} != *x* || ( $WAITLOCK_SLOT == "\${_waitlock_slot_set-}" && $- == *a* ) ]]; then WAITLOCK_SLOT=$slot; _waitlock_slot_set=$slot; fi`
    : `  return "$st"`
}
}`;

const BASH = (cmd: string) => `# waitlock shell functions for bash: eval "$(waitlock --shell-init bash)"
_waitlock_cmd=(${cmd})
_waitlock_n=0
_waitlock_owner=
_waitlock_pid=
_waitlock_slot=
_waitlock_interrupted=
${ENCODE}
_waitlock_cancel() {
  _waitlock_interrupted=1
  printf '%s\\n' "c\${_waitlock_id#w} cancel $_waitlock_id" >&"\${_WAITLOCK[1]}" 2>/dev/null || :
}
# Starts this shell process's coprocess, or reports the death of the one it had (status 4).
_waitlock_start() {
  local me=$BASHPID
  # The ends of a coprocess that died, or of the parent's one that a subshell inherited
  # (the parent keeps its own), closed here: bash then knows it is gone (or it warns that
  # it still exists), and no descriptor is left behind.
  if [[ -n \${_WAITLOCK[1]-} ]]; then
    local r=\${_WAITLOCK[0]} w=\${_WAITLOCK[1]}
    { exec {r}<&- {w}>&-; } 2>/dev/null
  fi
  if [[ $_waitlock_owner == "$me" ]]; then
    printf 'waitlock: coprocess %s has exited: the locks it held are released\\n' "$_waitlock_pid" >&2
    _waitlock_owner=
    return 4
  fi
  coproc _WAITLOCK { WAITLOCK_DIR= WAITLOCK_BACKEND= exec "\${_waitlock_cmd[@]}" --serve --owner "$me"; }
  _waitlock_owner=$me
  _waitlock_pid=$_WAITLOCK_PID
  # Not a job of the shell's: a bare 'wait' must not wait for it.
  disown "$_waitlock_pid" 2>/dev/null || :
}
# Reads answers (into the caller's id st slot text) until the one to its request $_waitlock_id,
# as the caller's quick read could not: MODE is quick (an acquire's answer, within the quick
# time), wait (an acquire that waits: from now on ^C withdraws it) or plain (a release).
_waitlock_answer() {
  local mode=$1 rc=0 old= trapped=
  _waitlock_interrupted=
  while :; do
    if [[ $mode == wait ]]; then
      mode=waiting
      rc=0
      # A shell that ignores ^C (trap '' INT) keeps waiting through it, as flock(1) would.
      old=$(trap -p INT)
      if [[ $old != "trap -- '' SIGINT" ]]; then
        trapped=1
        trap _waitlock_cancel INT
      fi
    elif [[ $mode == quick ]]; then
      # The first character, within the quick time. A read that times out may have taken
      # it all the same: it is in $first.
      IFS= read -r -n 1 -t ${QUICK_SECONDS} -u "\${_WAITLOCK[0]}" first && rc=0 || rc=$?
      # No answer yet: the acquire waits.
      if (( rc > 128 )); then mode=wait; continue; fi
    fi
    if (( rc == 0 )); then IFS=' ' read -r -u "\${_WAITLOCK[0]}" id st slot text && rc=0 || rc=$?; fi
    if (( rc == 0 )); then
      id=$first$id
      first=
      if [[ $id == "$_waitlock_id" ]]; then break; fi
      continue
    fi
    if [[ -n $trapped ]]; then if [[ -n $old ]]; then eval "$old"; else trap - INT; fi; fi
    printf 'waitlock: coprocess %s exited without answering: the locks it held are released\\n' "$_waitlock_pid" >&2
    _waitlock_owner=
    return 4
  done
  if [[ -n $trapped ]]; then if [[ -n $old ]]; then eval "$old"; else trap - INT; fi; fi
  if [[ -n $_waitlock_interrupted ]]; then
    # As a ^C'd flock(1) would: the shell gets its SIGINT (a script ends, unless it traps it).
    kill -INT "$BASHPID"
    return 130
  fi
}
${BASH_VERB("acquire")}
${BASH_VERB("release")}
`;

const ZSH = (cmd: string) => `# waitlock shell functions for zsh: eval "$(waitlock --shell-init zsh)"
zmodload zsh/system zsh/parameter
typeset -ga _waitlock_cmd
_waitlock_cmd=(${cmd})
typeset -g _waitlock_n=0 _waitlock_owner= _waitlock_pid= _waitlock_in= _waitlock_out= _waitlock_slot= _waitlock_interrupted=
${ENCODE}
_waitlock_cancel() {
  emulate -L zsh
  _waitlock_interrupted=1
  print -r -u $_waitlock_out -- "c\${_waitlock_id#w} cancel $_waitlock_id" 2>/dev/null
}
# True when the shell ignores ^C (trap '' INT). The kernel's SigIgn mask says so (Linux):
# zsh lists no traps in a subshell, so $(trap) cannot. Elsewhere taken as not ignored.
_waitlock_int_ignored() {
  emulate -L zsh
  [[ -r /proc/$sysparams[pid]/status ]] || return 1
  local st=$(</proc/$sysparams[pid]/status)
  st=\${\${(M)\${(f)st}:#SigIgn:*}#SigIgn:}
  (( 16#\${st//[[:space:]]/} & 2 ))
}
_waitlock_request() {
  # zsh's own options here, whatever the caller set (ksharrays, noclobber, shwordsplit ...);
  # -L: they, and the traps set here, are the caller's again on return.
  emulate -L zsh
  trap '' PIPE
  local _waitlock_req id st slot text v first= quick= me=$sysparams[pid]
  if [[ $_waitlock_owner != $me ]]; then
    if [[ -n $_waitlock_out ]]; then exec {_waitlock_out}>&- {_waitlock_in}<&-; fi
    coproc WAITLOCK_DIR= WAITLOCK_BACKEND= "\${_waitlock_cmd[@]}" --serve --owner $me
    _waitlock_pid=$!
    exec {_waitlock_out}>&p {_waitlock_in}<&p
    # Not a job of the shell's: a bare 'wait' must not wait for it. Found by its PID: in a
    # subshell it is not the current job (%+ there is the parent's, or none).
    local job
    for job in \${(k)jobstates}; do
      if [[ $jobstates[$job] == *:$_waitlock_pid=* ]]; then disown %$job; fi
    done
    _waitlock_owner=$me
  elif ! kill -0 "$_waitlock_pid" 2>/dev/null; then
    print -ru2 -- "waitlock: coprocess $_waitlock_pid has exited: the locks it held are released"
    _waitlock_owner=
    return 4
  fi
  _waitlock_n=$((_waitlock_n + 1))
  # The request's own ID: a trap that calls the functions while this one waits numbers its
  # requests on, and this one must still know which answer is its own.
  local _waitlock_id=w$_waitlock_n
  _waitlock_interrupted=
  # IDs of two characters at least: the quick read below takes the first alone.
  _waitlock_req="$_waitlock_id $1"
  # ^C withdraws a waiting acquire (localtraps: the caller's INT trap is back when this
  # function returns), unless the shell ignores it (trap '' INT), as flock(1) would keep
  # waiting. Looking costs a few system calls: a script's acquire first waits
  # ${QUICK_SECONDS} s for its answer without a trap.
  if [[ $1 == acquire ]]; then
    if [[ -o interactive ]]; then
      _waitlock_int_ignored || trap _waitlock_cancel INT
    else
      quick=${QUICK_SECONDS}
    fi
  fi
  shift
${[...VARS].reverse().map((v) => `  if (( \${+${v}} )) && [[ \${(t)${v}} == *export* ]]; then set -- "${v}=$${v}" "$@"; fi`).join("\n")}
${WORDS}
  if ! print -r -u $_waitlock_out -- "$_waitlock_req" 2>/dev/null; then
    print -ru2 -- "waitlock: coprocess $_waitlock_pid has exited: the locks it held are released"
    _waitlock_owner=
    return 4
  fi
  while :; do
    if [[ -n $quick ]]; then
      # No first character within the quick time (or the end of the coprocess's output,
      # which the read below reports): the acquire waits, and from now on ^C withdraws it.
      if ! read -t $quick -k 1 -u $_waitlock_in first; then
        first=
        _waitlock_int_ignored || trap _waitlock_cancel INT
      fi
      quick=
    fi
    if ! IFS=' ' read -r -u $_waitlock_in id st slot text; then
      print -ru2 -- "waitlock: coprocess $_waitlock_pid exited without answering: the locks it held are released"
      _waitlock_owner=
      return 4
    fi
    id=$first$id
    first=
    if [[ $id == "$_waitlock_id" ]]; then break; fi
  done
  if [[ -n $_waitlock_interrupted ]]; then return 130; fi
  if [[ -n $text ]]; then print -ru2 -- "waitlock: $text"; fi
  _waitlock_slot=$slot
  return $st
}
waitlock_acquire() {
  emulate -L zsh
  _waitlock_request acquire "$@"
  local st=$?
  if [[ -n $_waitlock_interrupted ]]; then
    # As a ^C'd flock(1) would: the shell gets its SIGINT (a script ends, unless it traps it).
    kill -INT $sysparams[pid]
    return 130
  fi
  (( st == 0 )) || return $st
  # An exported WAITLOCK_SLOT is the caller's slot preference: left as it is. (Under
  # emulate -L zsh, allexport is off here: the functions never export one themselves.)
  if ! (( \${+WAITLOCK_SLOT} )) || [[ \${(t)WAITLOCK_SLOT} != *export* ]]; then WAITLOCK_SLOT=$_waitlock_slot; fi
}
waitlock_release() {
  emulate -L zsh
  _waitlock_request release "$@"
}
`;

/**
 * The functions `waitlock_acquire [OPTIONS] NAME` (sets WAITLOCK_SLOT, 0-based, unless the
 * caller exported it) and `waitlock_release [OPTIONS] NAME` for `shell`, running `command`
 * (the program and its leading arguments) as the coprocess. Their exit statuses are the
 * plain form's; 4 when the coprocess has died; 130 when ^C withdrew a waiting acquire.
 */
export function shellFunctions(shell: Shell, command: string[]): string {
  const cmd = command.map(quote).join(" ");
  return shell === "bash" ? BASH(cmd) : ZSH(cmd);
}
