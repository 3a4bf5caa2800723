// waitlock --shell-init bash|zsh: shell functions that take locks through one `--serve`
// coprocess per shell process, started on first use (protocol: modes/serve.ts).
//
// Each (sub)shell process has a coprocess of its own: bash closes a coprocess's pipes in
// subshells, and a coprocess shared by several processes would hand one's answer to
// another. A subshell's locks are released when it exits. Only exported WAITLOCK_*
// variables are passed on, as the plain form sees only those. A dead coprocess is reported
// once (its locks are gone with it); the next call starts a new one.
import type { Shell } from "../options";

/** `s` quoted for a POSIX shell: one word, whatever it holds. */
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

const VARS = ["WAITLOCK_DIR", "WAITLOCK_TIMEOUT", "WAITLOCK_SLOT", "WAITLOCK_RECORD"];

// Appends one %-encoded word to a request line (the same in bash and zsh).
const ADD = `_waitlock_add() {
  local v=$1
  if [[ -z $v ]]; then _waitlock_req+=" %"; return 0; fi
  v=\${v//\\%/%25}; v=\${v//\\ /%20}; v=\${v//$'\\t'/%09}; v=\${v//$'\\n'/%0A}; v=\${v//$'\\r'/%0D}
  _waitlock_req+=" $v"
}`;

const BASH = (cmd: string) => `# waitlock shell functions for bash: eval "$(waitlock --shell-init bash)"
_waitlock_cmd=(${cmd})
_waitlock_n=0
_waitlock_owner=
_waitlock_pid=
_waitlock_slot=
${ADD}
_waitlock_request() {
  local _waitlock_req id st slot text
  if [[ $_waitlock_owner != "$BASHPID" ]]; then
    coproc _WAITLOCK { exec "\${_waitlock_cmd[@]}" --serve; }
    _waitlock_owner=$BASHPID
    _waitlock_pid=$_WAITLOCK_PID
  elif [[ -z \${_WAITLOCK_PID-} ]] || ! kill -0 "$_WAITLOCK_PID" 2>/dev/null; then
    printf 'waitlock: coprocess %s has exited: the locks it held are released\\n' "$_waitlock_pid" >&2
    _waitlock_owner=
    return 4
  fi
  _waitlock_n=$((_waitlock_n + 1))
  _waitlock_req="$_waitlock_n $1"
  shift
${VARS.map((v) => `  if [[ -v ${v} && \${${v}@a} == *x* ]]; then _waitlock_add "${v}=$${v}"; fi`).join("\n")}
  for id in "$@"; do _waitlock_add "$id"; done
  if ! printf '%s\\n' "$_waitlock_req" >&"\${_WAITLOCK[1]}"; then
    printf 'waitlock: cannot reach coprocess %s\\n' "$_waitlock_pid" >&2
    return 4
  fi
  while :; do
    if ! IFS=' ' read -r id st slot text <&"\${_WAITLOCK[0]}"; then
      printf 'waitlock: coprocess %s exited without answering: the locks it held are released\\n' "$_waitlock_pid" >&2
      _waitlock_owner=
      return 4
    fi
    if [[ $id == "$_waitlock_n" ]]; then break; fi
  done
  if [[ -n $text ]]; then printf 'waitlock: %s\\n' "$text" >&2; fi
  _waitlock_slot=$slot
  return "$st"
}
waitlock_acquire() {
  _waitlock_request acquire "$@" || return
  WAITLOCK_SLOT=$_waitlock_slot
}
waitlock_release() {
  _waitlock_request release "$@"
}
`;

const ZSH = (cmd: string) => `# waitlock shell functions for zsh: eval "$(waitlock --shell-init zsh)"
zmodload zsh/system
typeset -ga _waitlock_cmd
_waitlock_cmd=(${cmd})
typeset -g _waitlock_n=0 _waitlock_owner= _waitlock_pid= _waitlock_in= _waitlock_out= _waitlock_slot=
${ADD}
_waitlock_request() {
  setopt localoptions localtraps
  trap '' PIPE
  local _waitlock_req id st slot text
  if [[ $_waitlock_owner != $sysparams[pid] ]]; then
    if [[ -n $_waitlock_out ]]; then exec {_waitlock_out}>&- {_waitlock_in}<&-; fi
    coproc "\${_waitlock_cmd[@]}" --serve
    _waitlock_pid=$!
    exec {_waitlock_out}>&p {_waitlock_in}<&p
    _waitlock_owner=$sysparams[pid]
  elif ! kill -0 "$_waitlock_pid" 2>/dev/null; then
    print -ru2 -- "waitlock: coprocess $_waitlock_pid has exited: the locks it held are released"
    _waitlock_owner=
    return 4
  fi
  _waitlock_n=$((_waitlock_n + 1))
  _waitlock_req="$_waitlock_n $1"
  shift
${VARS.map((v) => `  if (( \${+${v}} )) && [[ \${(t)${v}} == *export* ]]; then _waitlock_add "${v}=$${v}"; fi`).join("\n")}
  for id in "$@"; do _waitlock_add "$id"; done
  if ! print -r -u $_waitlock_out -- "$_waitlock_req" 2>/dev/null; then
    print -ru2 -- "waitlock: coprocess $_waitlock_pid has exited: the locks it held are released"
    _waitlock_owner=
    return 4
  fi
  while :; do
    if ! IFS=' ' read -r -u $_waitlock_in id st slot text; then
      print -ru2 -- "waitlock: coprocess $_waitlock_pid exited without answering: the locks it held are released"
      _waitlock_owner=
      return 4
    fi
    if [[ $id == "$_waitlock_n" ]]; then break; fi
  done
  if [[ -n $text ]]; then print -ru2 -- "waitlock: $text"; fi
  _waitlock_slot=$slot
  return $st
}
waitlock_acquire() {
  _waitlock_request acquire "$@" || return
  WAITLOCK_SLOT=$_waitlock_slot
}
waitlock_release() {
  _waitlock_request release "$@"
}
`;

/**
 * The functions `waitlock_acquire [OPTIONS] NAME` (sets WAITLOCK_SLOT, 0-based) and
 * `waitlock_release [OPTIONS] NAME` for `shell`, running `command` (the program and its
 * leading arguments) as the coprocess. Their exit statuses are the plain form's; 4 when the
 * coprocess has died.
 */
export function shellFunctions(shell: Shell, command: string[]): string {
  const cmd = command.map(quote).join(" ");
  return shell === "bash" ? BASH(cmd) : ZSH(cmd);
}
