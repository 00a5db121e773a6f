#!/usr/bin/env bash
# Start or stop the Redis processes the tests need, on free loopback ports.
#
#   eval "$(.ci/services.sh start)"   # starts them; prints the WIREHUB_TEST_* exports
#   .ci/services.sh stop              # stops every process it started, by PID
#
# Started: a redis-server for the engine tests (WIREHUB_TEST_REDIS_URL, unless the
# caller set it already), two more (sharding), a 3-master Redis Cluster, and a Redis
# master watched by one Sentinel (`redis-server --sentinel`: the binary Debian's
# redis-sentinel package runs). Nothing touches a Redis it did not start.
# State lives in $WIREHUB_TEST_SERVICES_DIR (default: .ci/.services), PIDs in its pids file.
set -euo pipefail

DIR="${WIREHUB_TEST_SERVICES_DIR:-$(cd "$(dirname "$0")" && pwd)/.services}"
PIDS="$DIR/pids"

free_port() {  # a free port P whose P+10000 is free too (a cluster node's bus port)
    python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randrange(20000, 50000)
    try:
        for p in (port, port + 10000):
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(port)
    break
else:
    raise SystemExit("no free port")
PY
}

wait_ping() {  # port [extra redis-cli args]
    local port=$1
    for _ in $(seq 1 100); do
        if redis-cli -p "$port" ping >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "redis on port $port did not start; see $DIR/*.log" >&2
    return 1
}

start_redis() {  # name port [redis-server options...]
    local name=$1 port=$2
    shift 2
    mkdir -p "$DIR/$name"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --dir "$DIR/$name" --logfile "$DIR/$name.log" "$@" >/dev/null 2>&1 &
    echo "$! $name" >>"$PIDS"
    wait_ping "$port"
}

start() {
    if [ -s "$PIDS" ]; then
        echo "services already started (see $PIDS); run: $0 stop" >&2
        exit 1
    fi
    mkdir -p "$DIR"
    : >"$PIDS"
    # Whatever fails from here stops what was started.
    trap 'stop >/dev/null 2>&1' EXIT

    local main_url="${WIREHUB_TEST_REDIS_URL:-}"
    if [ -z "$main_url" ]; then
        local main
        main=$(free_port)
        start_redis main "$main"
        main_url="redis://127.0.0.1:$main"
    fi

    local shard1 shard2
    shard1=$(free_port)
    start_redis shard1 "$shard1"
    shard2=$(free_port)
    start_redis shard2 "$shard2"

    local cluster=()
    for i in 1 2 3; do
        local port
        port=$(free_port)
        start_redis "cluster$i" "$port" --cluster-enabled yes \
            --cluster-config-file "$DIR/cluster$i/nodes.conf" --cluster-node-timeout 5000
        cluster+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${cluster[@]}" --cluster-replicas 0 --cluster-yes \
        >"$DIR/cluster-create.log" 2>&1
    for node in "${cluster[@]}"; do
        local ok=""
        for _ in $(seq 1 100); do
            if redis-cli -p "${node#*:}" cluster info 2>/dev/null | grep -q "cluster_state:ok"; then
                ok=1
                break
            fi
            sleep 0.1
        done
        [ -n "$ok" ] || { echo "cluster node $node not ready" >&2; exit 1; }
    done

    local master sentinel
    master=$(free_port)
    start_redis sentinel-master "$master"
    sentinel=$(free_port)
    mkdir -p "$DIR/sentinel"
    cat >"$DIR/sentinel/sentinel.conf" <<CONF
bind 127.0.0.1
port $sentinel
dir $DIR/sentinel
logfile $DIR/sentinel.log
sentinel monitor wirehub 127.0.0.1 $master 1
sentinel down-after-milliseconds wirehub 5000
CONF
    redis-server "$DIR/sentinel/sentinel.conf" --sentinel >/dev/null 2>&1 &
    echo "$! sentinel" >>"$PIDS"
    wait_ping "$sentinel"

    local seeds="redis+cluster://${cluster[0]}?addr=${cluster[1]}&addr=${cluster[2]}"
    cat >"$DIR/env" <<ENV
export WIREHUB_TEST_REDIS_URL="$main_url"
export WIREHUB_TEST_REDIS_SHARD_URLS="redis://127.0.0.1:$shard1,redis://127.0.0.1:$shard2"
export WIREHUB_TEST_REDIS_CLUSTER_URL="$seeds"
export WIREHUB_TEST_REDIS_SENTINEL_URL="redis+sentinel://127.0.0.1:$sentinel?sentinel_master_name=wirehub"
ENV
    trap - EXIT
    cat "$DIR/env"
}

stop() {
    [ -f "$PIDS" ] || return 0
    while read -r pid name; do
        kill "$pid" 2>/dev/null || true
    done <"$PIDS"
    while read -r pid name; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || continue 2
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done <"$PIDS"
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
