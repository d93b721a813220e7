#!/usr/bin/env bash
# Start a Ray head plus N worker nodes on THIS machine, loopback only:
#
#   bash cluster/start_local.sh [--workers N] [--cpus-per-node C] [--port GCS_PORT]
#                               [--dashboard-port PORT] [--temp-dir DIR] [--object-store-mb MB]
#   bash cluster/stop_local.sh DIR        # stops exactly this cluster (nothing else)
#
# The same flags can come from the environment: LOCAL_RAY_WORKERS, LOCAL_RAY_CPUS,
# LOCAL_RAY_PORT, LOCAL_RAY_DASHBOARD_PORT, LOCAL_RAY_TEMP_DIR,
# LOCAL_RAY_OBJECT_STORE_MB. Defaults: 1 worker node, 1 CPU per node, GCS port 6390 and
# dashboard 8266 (not Ray's 6379/8265, so it runs beside a plain `ray start --head`).
#
# What it is for: a multi-node Ray cluster on one host, to try placement, spreading and
# node loss before renting machines. Every node is a separate raylet with its own temp dir
# (DIR/head, DIR/w1, ...): that is how stop_local.sh finds exactly this cluster's processes,
# and how one node can be killed alone (`stop_local.sh DIR --node w1 --signal KILL`).
# CPU only: every node advertises 0 GPUs, since nodes on one host would all claim the same
# physical GPUs; GPU clusters are aws-gpu.yaml and kuberay/.
#
# Binding: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes every Ray process of every node use
# 127.0.0.1 (on Linux Ray otherwise resolves localhost to the interface address), and with
# node IP 127.0.0.1 Ray binds its ports there, not on all interfaces (measured: with a node
# IP of 127.0.0.2 they bind 0.0.0.0). The dashboard is on 127.0.0.1 too. Token authentication
# stays on (RAY_AUTH_MODE=token; the token is ~/.ray/auth_token, or RAY_AUTH_TOKEN_PATH /
# RAY_AUTH_TOKEN when set).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKERS="${LOCAL_RAY_WORKERS:-1}"
CPUS="${LOCAL_RAY_CPUS:-1}"
GCS_PORT="${LOCAL_RAY_PORT:-6390}"
DASHBOARD_PORT="${LOCAL_RAY_DASHBOARD_PORT:-8266}"
TEMP_DIR="${LOCAL_RAY_TEMP_DIR:-}"
OBJECT_STORE_MB="${LOCAL_RAY_OBJECT_STORE_MB:-}"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --cpus-per-node) CPUS="$2"; shift 2 ;;
    --port) GCS_PORT="$2"; shift 2 ;;
    --dashboard-port) DASHBOARD_PORT="$2"; shift 2 ;;
    --temp-dir) TEMP_DIR="$2"; shift 2 ;;
    --object-store-mb) OBJECT_STORE_MB="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
for pair in "workers:$WORKERS" "cpus-per-node:$CPUS" "port:$GCS_PORT" "dashboard-port:$DASHBOARD_PORT"; do
  case "${pair#*:}" in ''|*[!0-9]*) echo "error: --${pair%%:*} must be a non-negative integer, got '${pair#*:}'" >&2; exit 2 ;; esac
done
[ "$CPUS" -ge 1 ] || { echo "error: --cpus-per-node must be at least 1" >&2; exit 2; }

# The project's venv when there is one, so that `python` in a submitted job is the venv's.
if [ -x "$ROOT/.venv/bin/ray" ]; then
  export PATH="$ROOT/.venv/bin:$PATH"
fi
command -v ray >/dev/null || { echo "error: no 'ray' on PATH (run: bash cluster/install.sh)" >&2; exit 2; }
PY="$(dirname "$(command -v ray)")/python"
[ -x "$PY" ] || PY=python3

export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token
unset RAY_ADDRESS

port_free() {  # 0 when nothing listens on 127.0.0.1:$1 (and it can be bound)
  "$PY" -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}
free_port() {  # a port the kernel considers free now
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
for p in "$GCS_PORT" "$DASHBOARD_PORT"; do
  port_free "$p" || { echo "error: port $p on 127.0.0.1 is in use; pick another with --port/--dashboard-port" >&2; exit 2; }
done

if [ -z "$TEMP_DIR" ]; then
  TEMP_DIR="$(mktemp -d /tmp/raylocal.XXXXXX)"
else
  mkdir -p "$TEMP_DIR"
  TEMP_DIR="$(cd "$TEMP_DIR" && pwd)"
fi
if [ -f "$TEMP_DIR/cluster.env" ]; then
  echo "error: $TEMP_DIR already holds a cluster (cluster.env); stop it with cluster/stop_local.sh $TEMP_DIR" >&2
  exit 2
fi
# Unix sockets live under DIR/<node>/session_<date>_<pid>/sockets/ and are limited to 107 bytes.
if [ "${#TEMP_DIR}" -gt 48 ]; then
  echo "warning: --temp-dir $TEMP_DIR is long; Ray's socket paths beneath it may exceed 107 bytes" >&2
fi

# Token auth: make sure a token exists before any node starts (ray start reads it, it does not create it).
if [ -z "${RAY_AUTH_TOKEN:-}" ] && [ -z "${RAY_AUTH_TOKEN_PATH:-}" ] && [ ! -s "$HOME/.ray/auth_token" ]; then
  ray get-auth-token --generate >/dev/null
fi

common=(--num-cpus="$CPUS" --num-gpus=0 --disable-usage-stats
        # Ports every node would otherwise share on one host: the dashboard agent's HTTP port
        # (default 52365) and the worker port range (10002-19999) -> chosen per node (0 = any free).
        --dashboard-agent-listen-port=0 --min-worker-port=0 --max-worker-port=0)
[ -n "$OBJECT_STORE_MB" ] && common+=(--object-store-memory=$((OBJECT_STORE_MB * 1024 * 1024)))

node_pid() {  # pid of the raylet whose --temp_dir is $1
  local dir="$1" pid args
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    args="$({ tr '\0' '\n' < "/proc/$pid/cmdline"; } 2>/dev/null)" || continue
    if printf '%s\n' "$args" | grep -qxF -- "--temp_dir=$dir" && printf '%s\n' "$args" | head -1 | grep -q '/raylet$'; then
      echo "$pid"; return 0
    fi
  done
  return 1
}

write_node_env() {  # DIR/<node>/node.env: what stop_local.sh and tests need to find this node
  local name="$1" dir="$TEMP_DIR/$1" pid node_id ip
  pid="$(node_pid "$dir")" || { echo "error: no raylet found for node $name ($dir)" >&2; return 1; }
  node_id="$(tr '\0' '\n' < "/proc/$pid/cmdline" | sed -n 's/^--node_id=//p')"
  ip="$(tr '\0' '\n' < "/proc/$pid/cmdline" | sed -n 's/^--node_ip_address=//p')"
  [ "$ip" = 127.0.0.1 ] || { echo "error: node $name came up on $ip, not 127.0.0.1" >&2; return 1; }
  printf 'NODE_NAME=%s\nNODE_DIR=%s\nRAYLET_PID=%s\nNODE_ID=%s\n' "$name" "$dir" "$pid" "$node_id" > "$dir/node.env"
}

fail() { echo "error: $1; stopping what was started" >&2; bash "$ROOT/cluster/stop_local.sh" "$TEMP_DIR" >&2 || true; exit 1; }

# cluster.env first, so that stop_local.sh can clean up even a half-started cluster.
NODES="head"
for i in $(seq 1 "$WORKERS"); do NODES="$NODES w$i"; done
cat > "$TEMP_DIR/cluster.env" <<EOF
GCS_ADDRESS=127.0.0.1:$GCS_PORT
DASHBOARD_URL=http://127.0.0.1:$DASHBOARD_PORT
NODES="$NODES"
PROJECT_ROOT=$ROOT
EOF

# The head runs in the project root: `ray job submit` without --working-dir runs the
# entrypoint there, with this environment (see ray-verified.md).
mkdir -p "$TEMP_DIR/head"
client_port="$(free_port)"
# The head's Prometheus endpoints default to fixed ports (44217 autoscaler, 44227 dashboard)
# that a second head on this host would collide with.
export AUTOSCALER_METRIC_PORT="$(free_port)" DASHBOARD_METRIC_PORT="$(free_port)"
( cd "$ROOT" && ray start --head --port="$GCS_PORT" --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
    --ray-client-server-port="$client_port" --temp-dir="$TEMP_DIR/head" "${common[@]}" ) \
  > "$TEMP_DIR/head/start.log" 2>&1 || fail "head failed to start (see $TEMP_DIR/head/start.log)"
write_node_env head || fail "head did not come up"

# A worker node is `ray start --address=127.0.0.1:PORT` with one guard lifted. With
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 `ray start` refuses worker nodes outright ("Multi-node
# Ray clusters are not supported on Windows and OSX"); with =1 it rewrites 127.0.0.1 to the
# interface address and the node listens on all interfaces. So the launcher passes the
# guard, then switches back to =0 behaviour before the address is resolved; the node's
# processes inherit =0 like the head's. write_node_env checks the result (node IP 127.0.0.1).
start_worker_node() {
  "$PY" - start "$@" <<'EOF'
import sys

import ray._private.ray_constants as ray_constants
import ray._private.services as services
from ray.scripts.scripts import main

resolve = services.canonicalize_bootstrap_address


def resolve_on_loopback(*args, **kwargs):
    ray_constants.ENABLE_RAY_CLUSTER = False  # from here on, as with the env var at 0
    return resolve(*args, **kwargs)


ray_constants.ENABLE_RAY_CLUSTER = True  # only for the "no worker nodes" guard
services.canonicalize_bootstrap_address = resolve_on_loopback
sys.argv = ["ray", *sys.argv[1:]]
main()
EOF
}

for i in $(seq 1 "$WORKERS"); do
  mkdir -p "$TEMP_DIR/w$i"
  ( cd "$ROOT" && start_worker_node --address="127.0.0.1:$GCS_PORT" --temp-dir="$TEMP_DIR/w$i" "${common[@]}" ) \
    > "$TEMP_DIR/w$i/start.log" 2>&1 || fail "worker node w$i failed to start (see $TEMP_DIR/w$i/start.log)"
  write_node_env "w$i" || fail "worker node w$i did not come up"
done

# Wait until the GCS lists every node alive (a worker node registers a moment after `ray start`).
expected=$((WORKERS + 1))
alive=0
for _ in $(seq 1 60); do
  alive="$("$PY" - "127.0.0.1:$GCS_PORT" <<'EOF' 2>/dev/null || echo 0
import sys
from ray._raylet import GcsClient
nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=5)
print(sum(1 for n in nodes.values() if n.state == 0))  # 0 = ALIVE
EOF
)"
  [ "$alive" = "$expected" ] && break
  sleep 1
done
[ "$alive" = "$expected" ] || fail "only $alive of $expected nodes registered with the GCS"

cat <<EOF
Ray cluster: head + $WORKERS worker node(s), $CPUS CPU(s) each, all on 127.0.0.1 (token auth on)
  state:      $TEMP_DIR   (cluster.env, <node>/node.env, <node>/session_*/logs)
  GCS:        127.0.0.1:$GCS_PORT
  dashboard:  http://127.0.0.1:$DASHBOARD_PORT   (loopback only; from elsewhere: ssh -L $DASHBOARD_PORT:127.0.0.1:$DASHBOARD_PORT <this host>)

Submit a sweep (a --cache-dir every node sees; on one host any local folder):
  export RAY_AUTH_MODE=token RAY_API_SERVER_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT
  ray job submit -- python sweeps/run.py --space bimodal_p --cache-dir /tmp/mdlm-cache
or run the driver here against the cluster:
  RAY_AUTH_MODE=token RAY_ADDRESS=127.0.0.1:$GCS_PORT python sweeps/run.py --space bimodal_p

Stop exactly this cluster:
  bash cluster/stop_local.sh $TEMP_DIR
EOF
