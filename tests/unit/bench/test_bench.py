"""The benchmark's PyTorch reference matches the Flax SampleCNN, and the bench script runs.

The torch tests are skipped when torch (the optional ``bench`` extra) is absent.
"""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.models.sample_cnn import SampleCNN
from tests.helpers import REPO, TINY_CONFIG, run_cli

BENCH = [sys.executable, "-m", "bench.train_step_bench"]


def _random_batch_stats(stats, seed):
  """Non-trivial running means (normal) and variances (in [0.5, 1.5]) with ``stats``' shapes."""
  leaves, treedef = jax.tree.flatten_with_path(stats)
  rng = np.random.default_rng(seed)
  out = []
  for path, leaf in leaves:
    if path[-1].key == "var":
      out.append(jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32))
    else:
      out.append(jnp.asarray(rng.normal(0.0, 0.5, leaf.shape), jnp.float32))
  return jax.tree.unflatten(treedef, out)


@pytest.mark.parametrize("m, n, channels", [(3, 3, (4, 4, 4, 8, 8)), (2, 4, (4, 4, 8, 8, 8, 8))])
def test_torch_reference_matches_flax_logits_in_eval_mode(m, n, channels):
  torch = pytest.importorskip("torch")
  from musicrep_jax.bench import torch_sample_cnn

  model = SampleCNN(num_outputs=5, m=m, n=n, channels=channels)
  audio = np.random.default_rng(0).standard_normal((3, model.input_length, 1)).astype(np.float32)
  variables = model.init({"params": jax.random.key(0)}, jnp.asarray(audio), train=False)
  variables = {"params": variables["params"],
               "batch_stats": _random_batch_stats(variables["batch_stats"], seed=1)}
  expected = np.asarray(model.apply(variables, jnp.asarray(audio), train=False)["logits"])

  reference = torch_sample_cnn.TorchSampleCNN(num_outputs=5, m=m, n=n, channels=channels)
  torch_sample_cnn.load_flax_variables(reference, variables)
  reference.eval()
  with torch.no_grad():
    got = reference(torch.from_numpy(audio))["logits"].numpy()
  # float32 throughout; different summation orders only.
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_torch_reference_has_the_papers_parameter_count():
  pytest.importorskip("torch")
  from musicrep_jax.bench import torch_sample_cnn

  assert torch_sample_cnn.check_paper_param_count() == 1_869_874


def test_torch_train_step_runs_and_lowers_the_loss():
  torch = pytest.importorskip("torch")
  from musicrep_jax.bench import torch_sample_cnn

  torch.manual_seed(0)
  model = torch_sample_cnn.TorchSampleCNN(num_outputs=5, m=3, n=3, channels=(4, 4, 4, 8, 8),
                                          dropout_rate=0.0)
  step = torch_sample_cnn.make_train_step(model, torch_sample_cnn.make_optimizer(model, 0.05))
  audio = torch.randn(8, model.input_length, 1)
  tags = (torch.rand(8, 5) < 0.3).float()
  losses = [float(step(audio, tags)) for _ in range(20)]
  assert losses[-1] < losses[0]


def test_bench_help():
  proc = subprocess.run([*BENCH, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert "--no-torch" in proc.stdout and "--write-doc" in proc.stdout


def test_bench_tiny_jax_run_prints_json_with_one_compilation(tmp_path):
  # Through the installed CLI from outside the checkout: bench/ and configs/ must resolve.
  proc = subprocess.run(
      [sys.executable, "-m", "musicrep_jax.cli", "bench", "train-step", "--no-torch", "--steps",
       "2", "--repeats", "1", "--m", "3", "--n", "3", "--channels", "4,4,4,8,8", "--batch", "4",
       "--gemm-size", "128"],
      cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-4000:]
  # The bench's own JSON line comes first; the CLI's flat summary follows it.
  result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][0])
  assert result["jax"]["steps_per_s"]["median"] > 0
  assert result["jax"]["compilations"] == 1
  assert result["jax"]["xla_flops_per_step"] > 0
  # The step's buffers hold at least the batch (4 x 243 float32) and the process holds JAX.
  assert result["jax"]["step_memory_bytes"] >= 4 * 243 * 4
  assert result["jax"]["peak_rss_bytes"] > 100 * 2 ** 20
  assert result["torch"] is None


def test_musicrep_bench_lists_and_runs_benchmarks(tiny_data_dir):
  """``musicrep bench`` finds every bench/*_bench.py and passes its arguments through."""
  from musicrep_jax.commands import bench as bench_command

  names = bench_command.benchmarks()
  assert {"train-step", "input-pipeline"} <= set(names)
  proc = run_cli(["bench", "input-pipeline", "--batches", "3", "--warmup", "1", "--steps", "1",
                  "--repeats", "1", "--workers", "0", "--config", TINY_CONFIG,
                  "--data-dir", str(tiny_data_dir)])
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert summary["headroom"] > 0 and summary["batch"] == 16


def test_bench_times_a_rese2_model_against_its_torch_mirror():
  """``--block rese2``: the paper-5 model in JAX and its PyTorch mirror, timed in one run."""
  pytest.importorskip("torch")
  proc = subprocess.run(
      [*BENCH, "--block", "rese2", "--steps", "1", "--repeats", "1", "--n", "3",
       "--channels", "8,8,8,16", "--batch", "4", "--gemm-size", "128", "--no-compile"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
  assert result["config"].startswith("rese2 multi 3^3")
  assert result["jax"]["compilations"] == 1
  assert result["torch"]["steps_per_s"]["median"] > 0 and result["jax_over_torch"] > 0
