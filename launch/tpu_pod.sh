#!/usr/bin/env bash
# Runs `musicrep train` on every worker of a Cloud TPU VM slice (v4/v5e/v5p/v6e pods).
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config configs/samplecnn_mtat.py \
#       --workdir gs://BUCKET/workdirs/mtat --data-dir gs://BUCKET/data/mtat
#
# Every worker runs the same command (SPMD): one `gcloud compute tpus tpu-vm ssh --worker=all`.
# On a multi-worker slice JAX finds the coordinator itself (TPU_WORKER_HOSTNAMES is set by the
# TPU runtime; musicrep_jax.distributed detects it). Each worker reads its own slice of the
# shards, so --data-dir must be readable from every worker: a gs:// path or the same local path
# on each VM. The arguments after ZONE reach `musicrep train` on the workers unchanged (each is
# quoted for the remote shell).
#
# Preemption: the remote shell `exec`s musicrep, so the SIGTERM that a spot/preemptible TPU VM
# gets on preemption reaches the training process itself (see launch/README.md).
#
# Environment:
#   MUSICREP_REPO    the checkout on the workers, absolute or ~/... (default ~/musicrep-jax)
#   MUSICREP_VENV    its virtual environment on the workers (default $MUSICREP_REPO/.venv)
#   MUSICREP_PYTHON  the workers' Python >= 3.11 that makes the venv (default python3)
#   MUSICREP_SETUP=1 first copy this working tree to every worker and install it there with the
#                    TPU extra at the versions CI tested:
#                    pip install -c constraints.txt -e "$MUSICREP_REPO[tpu]"
#   GCLOUD_EXTRA     extra flags for the gcloud commands, split on spaces (e.g. --project=P)
set -euo pipefail
usage="usage: $0 TPU_NAME ZONE musicrep-train-args..."
tpu_name=${1:?${usage}}
zone=${2:?${usage}}
shift 2

# A path on the workers as one word for their shell: quoted, except that a leading ~/ stays the
# remote home directory.
remote_path() {
  case "$1" in
    "~/"*) printf '~/%q' "${1#"~/"}" ;;
    *) printf '%q' "$1" ;;
  esac
}

repo=$(remote_path "${MUSICREP_REPO:-"~/musicrep-jax"}")
if [[ -n "${MUSICREP_VENV:-}" ]]; then
  venv=$(remote_path "${MUSICREP_VENV}")
else
  venv='"${repo}/.venv"'
fi
python=$(printf '%q' "${MUSICREP_PYTHON:-python3}")
# Every remote command starts by setting these two shell variables on the worker.
prelude="repo=${repo} && venv=${venv}"

read -r -a gcloud_extra <<< "${GCLOUD_EXTRA:-}"
target=(--zone "${zone}" --worker=all ${gcloud_extra[@]+"${gcloud_extra[@]}"})
ssh=(gcloud compute tpus tpu-vm ssh "${tpu_name}" "${target[@]}")

if [[ "${MUSICREP_SETUP:-0}" == 1 ]]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  tmp=$(mktemp -d)
  trap 'rm -rf "${tmp}"' EXIT
  tar -C "${here}" --exclude=.git --exclude=.venv --exclude=.ci/venv --exclude=workdirs \
    --exclude=__pycache__ --exclude='*.egg-info' -czf "${tmp}/musicrep.tgz" .
  # A relative destination is the worker's home directory.
  gcloud compute tpus tpu-vm scp "${tmp}/musicrep.tgz" "${tpu_name}:musicrep.tgz" "${target[@]}"
  "${ssh[@]}" --command "${prelude} && mkdir -p \"\${repo}\" \
&& tar -C \"\${repo}\" -xzf ~/musicrep.tgz && rm -f ~/musicrep.tgz \
&& ${python} -m venv \"\${venv}\" \
&& \"\${venv}/bin/pip\" install -q -c \"\${repo}/constraints.txt\" -e \"\${repo}[tpu]\""
fi

args=""
if (($# > 0)); then
  args=$(printf ' %q' "$@")
fi
# `exec`: musicrep replaces the remote shell, so a signal sent to the session reaches it.
"${ssh[@]}" --command "${prelude} && cd \"\${repo}\" && exec \"\${venv}/bin/musicrep\" train${args}"
