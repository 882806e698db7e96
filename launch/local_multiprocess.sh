#!/usr/bin/env bash
# Simulates an N-host run on one machine: N processes, one CPU device each, gloo collectives,
# coordinator on 127.0.0.1. Every process runs the same command; process 0 writes logs.
#
#   launch/local_multiprocess.sh 2 --config configs/demo.py:runlocal --workdir workdirs/mp
#
# Extra arguments go to `musicrep train` unchanged. Exits with the first non-zero status.
set -euo pipefail
num_processes=${1:?usage: $0 NUM_PROCESSES musicrep-train-args...}
shift
port=${MUSICREP_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
pids=()
for ((i = 0; i < num_processes; i++)); do
  musicrep train "$@" --coordinator "127.0.0.1:${port}" --num-processes "${num_processes}" \
    --process-id "${i}" > >(sed "s/^/[process ${i}] /") 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "${pid}" || status=$?
done
exit "${status}"
