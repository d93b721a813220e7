#!/usr/bin/env bash
# Stop a cluster started by cluster/start_local.sh — only that cluster, never other Ray
# instances on the machine (unlike `ray stop`, which stops every Ray process it finds).
#
#   bash cluster/stop_local.sh DIR                          # every node: SIGTERM, then SIGKILL after a grace period
#   bash cluster/stop_local.sh DIR --node w1 --signal KILL  # one node, at once (simulates losing that machine)
#   bash cluster/stop_local.sh DIR --list [--node w1]       # print the pids it would stop
#
# DIR is the --temp-dir printed by start_local.sh. A node's processes are those whose Ray
# command line names the node's own temp dir (raylet, GCS, dashboard, agents, log monitor,
# workers all carry --temp-dir/--session-dir/--log-dir beneath it), plus all their
# descendants (e.g. the dashboard's module processes, a job's driver).
set -euo pipefail

DIR="${1:-${LOCAL_RAY_TEMP_DIR:-}}"
[ $# -gt 0 ] && shift
[ -n "$DIR" ] || { echo "usage: cluster/stop_local.sh DIR [--node NAME] [--signal TERM|KILL] [--grace S] [--list]" >&2; exit 2; }
DIR="$(cd "$DIR" 2>/dev/null && pwd)" || { echo "error: no such folder $1" >&2; exit 2; }
[ -f "$DIR/cluster.env" ] || { echo "error: $DIR holds no cluster started by start_local.sh (no cluster.env)" >&2; exit 2; }
# shellcheck disable=SC1091
. "$DIR/cluster.env"

ONLY=""
SIGNAL=TERM
GRACE=10
LIST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --node) ONLY="$2"; shift 2 ;;
    --signal) SIGNAL="${2#SIG}"; shift 2 ;;
    --grace) GRACE="$2"; shift 2 ;;
    --list) LIST=1; shift ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -n "$ONLY" ]; then
  case " $NODES " in *" $ONLY "*) ;; *) echo "error: no node '$ONLY' in this cluster (nodes: $NODES)" >&2; exit 2 ;; esac
fi

node_pids() {  # pids of node $1 and of all their descendants
  local dir="$DIR/$1" roots="" pid
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$pid" = "$$" ] && continue
    # Exact Ray flags naming this node's dir (or a path beneath it), one argument per line.
    if { tr '\0' '\n' < "/proc/$pid/cmdline"; } 2>/dev/null \
        | grep -qE -- "^--(temp|session|log|logs)[-_]dir=$(printf '%s' "$dir" | sed 's/[.[\*^$/]/\\&/g')(/|$)"; then
      roots="$roots $pid"
    fi
  done
  [ -n "$roots" ] || return 0
  # Add descendants: walk the parent table until nothing new appears.
  local table all="$roots " changed=1 child parent
  table="$(ps -e -o pid=,ppid=)"
  while [ "$changed" = 1 ]; do
    changed=0
    while read -r child parent; do
      case "$all" in *" $parent "*) case "$all" in *" $child "*) ;; *) all="$all$child "; changed=1 ;; esac ;; esac
    done <<< "$table"
  done
  echo $all
}

if [ -n "$ONLY" ]; then
  targets="$ONLY"
else
  # Worker nodes first, the head last (the GCS outlives its raylets, so nothing restarts).
  targets=""
  for n in $NODES; do [ "$n" = head ] || targets="$targets $n"; done
  targets="$targets head"
fi

pids=""
for n in $targets; do pids="$pids $(node_pids "$n")"; done
pids="$(echo $pids)"
if [ "$LIST" = 1 ]; then echo "$pids"; exit 0; fi
if [ -z "$pids" ]; then echo "nothing running for ${ONLY:-any node} in $DIR"; exit 0; fi

kill -s "$SIGNAL" $pids 2>/dev/null || true
if [ "$SIGNAL" != KILL ]; then
  for _ in $(seq 1 $((GRACE * 5))); do
    alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.2
  done
  [ -n "${alive:-}" ] && kill -s KILL $alive 2>/dev/null || true
fi
# Descendants that appeared meanwhile (a worker forked during shutdown), by the same rule.
for n in $targets; do
  late="$(node_pids "$n")"
  [ -n "$late" ] && kill -s KILL $late 2>/dev/null || true
done
echo "stopped ${ONLY:+node $ONLY of }$DIR ($SIGNAL: $(echo $pids | wc -w) processes)"
