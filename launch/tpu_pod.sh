#!/usr/bin/env bash
# Runs `musicrep train` on every worker of a Cloud TPU VM slice (v4/v5e/v5p/v6e pods).
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config configs/samplecnn_mtat.py \
#       --workdir gs://BUCKET/workdirs/mtat --data-dir gs://BUCKET/data/mtat
#
# Every worker runs the same command (SPMD). On a multi-worker slice JAX finds the coordinator
# itself (TPU_WORKER_HOSTNAMES is set by the TPU runtime; musicrep_jax.distributed detects it).
# Each worker reads its own slice of the shards, so --data-dir must be readable from every
# worker: a gs:// path (TFDS reads it through etils/gcsfs) or the same local path on each VM.
#
# Environment:
#   MUSICREP_REPO    where the repository is checked out on the workers (default ~/musicrep-jax)
#   MUSICREP_VENV    the virtual environment on the workers (default $MUSICREP_REPO/.venv)
#   MUSICREP_SETUP=1 first copy the working tree to every worker and `pip install -e .` there
#   GCLOUD_EXTRA     extra flags for `gcloud compute tpus tpu-vm ssh` (e.g. --project=P)
set -euo pipefail
tpu_name=${1:?usage: $0 TPU_NAME ZONE musicrep-train-args...}
zone=${2:?usage: $0 TPU_NAME ZONE musicrep-train-args...}
shift 2
repo=${MUSICREP_REPO:-'~/musicrep-jax'}
venv=${MUSICREP_VENV:-"${repo}/.venv"}
ssh=(gcloud compute tpus tpu-vm ssh "${tpu_name}" --zone "${zone}" --worker=all ${GCLOUD_EXTRA:-})

if [[ "${MUSICREP_SETUP:-0}" == 1 ]]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  tar -C "${here}" --exclude=.git --exclude=.ci/venv --exclude=workdirs -czf /tmp/musicrep.tgz .
  gcloud compute tpus tpu-vm scp /tmp/musicrep.tgz "${tpu_name}:/tmp/musicrep.tgz" \
    --zone "${zone}" --worker=all ${GCLOUD_EXTRA:-}
  "${ssh[@]}" --command "mkdir -p ${repo} && tar -C ${repo} -xzf /tmp/musicrep.tgz && \
    python3 -m venv ${venv} && ${venv}/bin/pip install -q -e '${repo}' 'jax[tpu]'"
fi

# Quote every argument for the remote shell.
args=$(printf ' %q' "$@")
"${ssh[@]}" --command "cd ${repo} && ${venv}/bin/musicrep train${args}"
