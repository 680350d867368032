# Shared shell helpers for scripts/cluster and scripts/demo. Source it; do not run it.
# A cluster "run directory" holds: cluster.toml, nodeN.jsonl (traces), nodeN.log
# (stderr), pids/N, args (program and extra args; "{id}" stands for the node's id), args.N
# (optional extra args for node N only, one per line), dataN (Raft state, when asked for),
# ctl.jsonl (fault events), ctl.inc/.seq.

FTBUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FTBUS_BIN="$FTBUS_ROOT/build/bin"

# µs since the epoch, without forking (bash 5's EPOCHREALTIME), so that a fault is dated
# within microseconds of its signal.
now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }

# fault ACTION TARGET PID [T]: appends a `fault` event to $RUN/ctl.jsonl (emitter "ctl"),
# at time T (µs since the epoch; default now).
fault() {
  local action="$1" target="$2" pid="${3:-0}" t="${4:-$(now_us)}"
  (
    flock 9
    local inc seq
    [ -s "$RUN/ctl.inc" ] || now_us > "$RUN/ctl.inc"
    inc=$(cat "$RUN/ctl.inc")
    seq=$(( $(cat "$RUN/ctl.seq" 2>/dev/null || echo 0) + 1 ))
    echo "$seq" > "$RUN/ctl.seq"
    printf '{"t":%s,"node":"ctl","inc":%s,"seq":%s,"lc":%s,"ev":"fault","action":"%s","target":%s,"pid":%s}\n' \
      "$t" "$inc" "$seq" "$seq" "$action" "$target" "$pid" >> "$RUN/ctl.jsonl"
  ) 9>"$RUN/ctl.lock"
}

pid_of() { cat "$RUN/pids/$1" 2>/dev/null || true; }
is_running() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# start_node ID: starts the recorded program for node ID in the background.
start_node() {
  local id="$1" prog args
  prog=$(head -n1 "$RUN/args")
  # "{id}" in an argument becomes the node's id (e.g. --data "$RUN/data{id}").
  mapfile -t args < <(tail -n +2 "$RUN/args" | sed "s/{id}/$id/g"; [ -s "$RUN/args.$id" ] && cat "$RUN/args.$id")
  setsid "$FTBUS_BIN/$prog" --cluster "$RUN/cluster.toml" --id "$id" --trace "$RUN/node$id.jsonl" \
    "${args[@]}" >>"$RUN/node$id.log" 2>&1 < /dev/null &
  echo $! > "$RUN/pids/$id"
  disown $! 2>/dev/null || true
}

# up N PROGRAM [ARGS...]: writes the cluster file (unless one is there) and starts N nodes.
cluster_up() {
  local n="$1" prog="${2:-ftbus-elect}"
  shift 2 || shift $#
  mkdir -p "$RUN/pids"
  [ -s "$RUN/cluster.toml" ] || "$FTBUS_ROOT/scripts/gen-cluster" "$n" ${GEN_ARGS:-} > "$RUN/cluster.toml"
  { echo "$prog"; if [ $# -gt 0 ]; then printf "%s\n" "$@"; fi; } > "$RUN/args"
  for ((i = 1; i <= n; i++)); do start_node "$i"; done
}

signal_node() {  # signal_node ID SIGNAL ACTION
  local id="$1" sig="$2" action="$3" p
  p=$(pid_of "$id")
  [ -n "$p" ] || { echo "no recorded process for node $id" >&2; return 2; }
  kill -0 "$p" 2>/dev/null || { echo "node $id (pid $p) is not running" >&2; return 1; }
  # Dated just before the signal, written just after: measurements from the trace start at
  # the signal itself, not at the bookkeeping before it.
  local t=${EPOCHREALTIME/[.,]/}
  kill -s "$sig" "$p"
  fault "$action" "$id" "$p" "$t"
  if [ "$sig" = KILL ]; then wait_gone "$p"; fi
}

wait_gone() { local p="$1" i; for ((i = 0; i < 200; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done; }

restart_node() {
  local id="$1" p t
  p=$(pid_of "$id")
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then kill -CONT "$p"; kill -KILL "$p"; wait_gone "$p"; fi
  t=$(now_us)  # the fault is dated before the start, so it precedes the new node's events
  start_node "$id"
  fault restart "$id" "$(pid_of "$id")" "$t"
}

cluster_down() {
  local f p
  for f in "$RUN"/pids/*; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    kill -0 "$p" 2>/dev/null && { kill -CONT "$p"; kill -TERM "$p"; }
  done
  for f in "$RUN"/pids/*; do
    [ -e "$f" ] || continue
    p=$(cat "$f"); wait_gone "$p"
    kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    rm -f "$f"
  done
  return 0
}

# wait_for SECONDS JQ_FILTER FILE...: waits until some event in FILEs matches the filter.
wait_for() {
  local secs="$1" filter="$2"; shift 2
  local deadline=$(( $(date +%s%N) / 1000000 + ${secs%.*} * 1000 ))
  while [ "$(( $(date +%s%N) / 1000000 ))" -lt "$deadline" ]; do
    # first(...) stops at the first match by itself: no early-closed pipe (with pipefail, a
    # grep -q that quits early would kill jq with SIGPIPE and read as "no match").
    if cat "$@" 2>/dev/null | jq -n -e "first(inputs | select($filter)) | true" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  return 1
}

# count JQ_FILTER FILE...: number of matching events.
count() { local filter="$1"; shift; cat "$@" 2>/dev/null | jq -c "select($filter)" 2>/dev/null | wc -l; }

# wait_agree SECONDS LEADER ID...: waits until every listed node follows LEADER (0: any one
# leader, the same for all; !X: any one leader but X); prints the leader. 1 on timeout.
wait_agree() {
  local secs="$1" want="$2"; shift 2
  local deadline=$(( $(date +%s) + secs )) ls first
  while [ "$(date +%s)" -le "$deadline" ]; do
    ls=$(python3 "$FTBUS_ROOT/scripts/leaders.py" "$RUN" "$@" | awk '{print $2}' | sort -u)
    if [ "$(wc -l <<<"$ls")" = 1 ] && [ "$ls" != 0 ]; then
      first=$ls
      if [ "$want" = 0 ] || [ "$first" = "$want" ] || { [ "${want#!}" != "$want" ] && [ "$first" != "${want#!}" ]; }; then
        echo "$first"; return 0
      fi
    fi
    sleep 0.1
  done
  return 1
}
