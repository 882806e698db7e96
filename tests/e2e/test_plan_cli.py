"""`musicrep plan` compiling for a real TPU topology (v5e:2x2) on this CPU host, through libtpu
(the test extra installs it; skipped without it): the paper's 3^9 SampleCNN at 4,096 examples
per chip does not fit, the JSON line holds the plan's fields, FSDP divides the per-chip
parameter bytes, and what cannot be compiled is a one-line error. ``JAX_PLATFORMS=cpu`` keeps
the host's own backend on CPU (libtpu loads only for the topology)."""

import importlib.util
import json

import pytest

from tests.helpers import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                       reason="libtpu is not installed (pip install 'musicrep-jax[tpu]')"),
]
ENV = {"JAX_PLATFORMS": "cpu", "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}
FIELDS = ("chips", "hosts", "device_kind", "global_batch", "per_chip_batch", "hbm_bytes_per_chip",
          "hbm_argument_bytes", "hbm_output_bytes", "hbm_temp_bytes", "hbm_alias_bytes",
          "hbm_capacity_bytes", "fits", "flops_per_chip", "bytes_accessed_per_chip",
          "arithmetic_intensity", "step_time_s", "mfu_bound", "samples_per_s_per_chip",
          "samples_per_s_per_host", "host_input_mb_per_s", "collectives_total",
          "all_reduce_count", "compile_train_s", "compile_eval_s")


def _plan(*args, check=True):
  proc = run_cli(["plan", *args], env_extra=ENV, check=check)
  return proc, (json.loads(proc.stdout.strip().splitlines()[-1]) if check else None)


def test_paper_samplecnn_at_4096_per_v5e_chip_does_not_fit():
  # The TPU compiler itself refuses a program larger than the chip's HBM (quickly): the plan
  # reports "fits": false with the bytes XLA says it needed, and no cost.
  proc, result = _plan("--config", "samplecnn_mtat", "--topology", "v5e:2x2",
                       "--config.batch_size=16384")
  assert (result["chips"], result["hosts"], result["device_kind"]) == (4, 1, "TPU v5 lite")
  assert (result["global_batch"], result["per_chip_batch"]) == (16384, 4096)
  assert result["fits"] is False and result["train_fits"] is False
  assert result["hbm_bytes_per_chip"] > result["hbm_capacity_bytes"]
  assert "memory" in result["out_of_memory"] and "fits: False" in proc.stdout


def test_fsdp_divides_the_per_chip_parameter_bytes():
  # A 3^5 SampleCNN wide enough (0.74 M parameters) that the state, not TPU tile padding of
  # small arrays, makes up the compiled arguments; it compiles in seconds, the 3^9 in a minute.
  args = ["--config", "samplecnn_mtat:runlocal", "--topology", "v5e:2x2",
          "--config.model.kwargs.channels=(128,128,128,256,256,256,512)"]
  _, replicated = _plan(*args)
  _, sharded = _plan(*args, "--config.mesh.fsdp=4")
  for result in (replicated, sharded):
    missing = [key for key in FIELDS if result.get(key) is None]
    assert not missing, missing
    assert (result["chips"], result["hosts"], result["device_kind"]) == (4, 1, "TPU v5 lite")
    assert result["fits"] is True and result["out_of_memory"] is None
    assert result["step_time_s"] >= result["flops_per_chip"] / result["peak_flops"]
    assert result["all_reduce_count"] >= 1  # The gradients (and BatchNorm statistics).
  assert (replicated["mesh_fsdp"], sharded["mesh_fsdp"]) == (1, 4)
  ratio = replicated["param_bytes_per_chip"] / sharded["param_bytes_per_chip"]
  assert 3.0 < ratio <= 4.0, ratio
  # What the compiled step holds as arguments (state + the same batch rows) drops with it.
  arguments = replicated["hbm_argument_bytes"] / sharded["hbm_argument_bytes"]
  assert 2.5 < arguments <= 4.0, arguments
  assert sharded["all_gather_count"] + sharded["reduce_scatter_count"] > 0


@pytest.mark.parametrize("args,needle", [
    (["--topology", "v9z:2x2"], "--topology v9z:2x2"),
    (["--topology", "v5e:2x2", "--config.mesh.fsdp=3"], "config.mesh.fsdp=3"),
    (["--topology", "v5e:2x2", "--config.batch_size=23"], "config.batch_size=23"),
])
def test_what_cannot_be_compiled_is_a_one_line_error(args, needle):
  proc, _ = _plan("--config", "samplecnn_mtat:runlocal", *args, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and needle in errors[0] and "samplecnn_mtat" in errors[0], errors
  assert "Traceback" not in proc.stderr


def test_a_task_that_reads_records_plans_on_the_embedded_corpus_quietly():
  # Zero-shot binds to records (tag words, the seen/unseen split): without --data-dir it plans on
  # the embedded corpus, with stand-in 300-d word vectors instead of training word2vec first.
  # libtpu, off a TPU VM, prints no metadata-server errors.
  proc, result = _plan("--config", "zero_shot:runlocal", "--topology", "v5e:2x2")
  assert result["data"].startswith("embedded corpus stand-in"), result["data"]
  assert result["fits"] is True and result["flops_per_chip"] > 0
  assert "word2vec" not in proc.stdout.lower()
  for noise in ("INVALID_ARGUMENT", "Failed to find host bounds", "Traceback"):
    assert noise not in proc.stderr, proc.stderr[-2000:]
