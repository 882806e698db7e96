#!/usr/bin/env bash
# The whole GPU check of issue 16 in one go, in under 10 minutes on one H100 with no network:
#
#   1. installs what the machine's Python lacks from wheels carried with the checkout
#      (--wheels DIR, default bench/wheels/; nothing is downloaded), into a private folder;
#      the JAX (CUDA), Flax, Optax, Orbax and PyTorch already installed there are used as they are;
#   2. checks that every module the check imports is there (one line naming what is missing);
#   3. runs the device-relevant tests on the GPU (models, mixed precision, losses and metrics,
#      the PyTorch reference), float32 matmuls at full precision for the parity tests;
#   4. times the train step of SampleCNN 3^9 and ReSE-2-multi 3^9 in float32 and bfloat16 in JAX
#      against the PyTorch mirror, eager and torch.compile, with MFU against the chip's published
#      peak, and one convolution layer in 1-D / 2-D and channels-last / channels-first
#      formulations (bench/accelerator_check.py);
#   5. writes the numbers into docs/benchmarks.md, a marked section named after the device
#      ("Accelerator check: NVIDIA H100 ..."), replaced on every run.
#
# Usage: bash bench/accelerator_check.sh [--dry-run] [--wheels DIR] [--python PYTHON]
#   --dry-run  the same steps on this machine's CPU with tiny sizes (CI): no install, one test,
#              torch.compile's aot_eager backend, and the section goes to a copy of
#              docs/benchmarks.md in a temporary file (its path is printed), not the real one.
#
# Filling the wheel folder (on a machine with network, for the GPU machine's Python, 3.12 in
# this workplace's image; about 4.5 MB in all, well inside a 64 MiB carry):
#
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d bench/wheels \
#     grain==0.2.18 array_record==0.8.6 ml_collections==1.1.0 portpicker==1.6.0
#
# (grain, array_record, ml_collections and portpicker are what `import musicrep_jax`, the
# benchmarks and the tests import beyond that image's packages; list another one there if the
# preflight names it.) This package itself is installed from the checkout without network
# (pip --no-build-isolation, the image's setuptools), or from a musicrep_jax wheel in the folder
# (`python -m pip wheel --no-deps --no-build-isolation -w bench/wheels .`).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DRY_RUN=0
WHEELS="bench/wheels"
PY="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --wheels) WHEELS="$2"; shift ;;
    --python) PY="$2"; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
step() { echo "== $(date +%H:%M:%S) $*"; }

# The modules the check imports that a bare CUDA image may lack (see the header).
REQUIRED="jax flax optax orbax.checkpoint torch numpy ml_collections grain array_record portpicker pytest"

if [ "$DRY_RUN" = 1 ]; then
  export JAX_PLATFORMS=cpu
  DOC="$(mktemp /tmp/accelerator-check-XXXXXX.md)"
  cp docs/benchmarks.md "$DOC"
  TESTS=(tests/unit/training/test_precision.py::test_auto_is_bfloat16_on_accelerators_and_float32_on_cpu)
  step "dry run on the CPU: no install, tiny sizes, writing $DOC"
else
  # conftest.py defaults JAX_PLATFORMS to cpu; the check must run on the GPU.
  export JAX_PLATFORMS="${JAX_PLATFORMS:-cuda}"
  DOC="docs/benchmarks.md"
  TESTS=(tests/unit/models tests/unit/training/test_precision.py tests/unit/ops
         tests/unit/bench/test_bench.py)
  SITE="${TMPDIR:-/tmp}/musicrep-site"
  step "installing from $WHEELS into $SITE (no network)"
  shopt -s nullglob
  wheels=("$WHEELS"/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "${wheels[@]}" || { echo "error: installing the wheels failed" >&2; exit 3; }
  fi
  if ! PYTHONPATH="$SITE" "$PY" -c "import musicrep_jax.bench" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
      --target "$SITE" . || { echo "error: installing musicrep-jax from the checkout failed" >&2; exit 3; }
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi

step "preflight: $REQUIRED"
"$PY" - $REQUIRED <<'EOF' || exit 3
import importlib, sys
missing = [name for name in sys.argv[1:] if importlib.util.find_spec(name.split(".")[0]) is None]
if missing:
  sys.exit(f"error: missing Python modules: {' '.join(missing)} (add their wheels to the wheel "
           "folder; see bench/accelerator_check.sh --help)")
import jax
print(f"jax {jax.__version__} on {jax.default_backend()}: {jax.devices()[0].device_kind}")
EOF

step "device tests: ${TESTS[*]}"
LOG="$(mktemp /tmp/accelerator-check-tests-XXXXXX.log)"
JAX_DEFAULT_MATMUL_PRECISION=highest timeout 300 "$PY" -m pytest -q -m "not slow" \
  -p no:cacheprovider "${TESTS[@]}" 2>&1 | tee "$LOG" | tail -n 15
TEST_SUMMARY="$(grep -E '(passed|failed|error|no tests ran)' "$LOG" | tail -n 1 | tr -d '=' | sed 's/^ *//; s/ *$//')"
TEST_SUMMARY="${TEST_SUMMARY:-pytest gave no summary (timed out?)}"

step "benchmarks"
"$PY" -m musicrep_jax.bench.accelerator_check --doc "$DOC" --tests "$TEST_SUMMARY" \
  $([ "$DRY_RUN" = 1 ] && echo --dry-run)
status=$?
step "wrote the section to $DOC (tests: $TEST_SUMMARY)"
exit $status
