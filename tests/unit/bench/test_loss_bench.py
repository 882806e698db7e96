"""bench/loss_bench.py runs at a tiny size: the kernels' jitted values equal their per-sample
references, and --write-doc writes (then replaces, not duplicates) its section. (All kernels
against the references: tests/test_losses.py.)"""

import numpy as np

from musicrep_jax.bench import loss_bench


def test_loss_bench_tiny_run_agrees_with_references_and_writes_its_section(tmp_path, capsys):
  doc = tmp_path / "benchmarks.md"
  doc.write_text("# Benchmarks\n\nkept text\n")
  args = ["--batch", "12", "--dim", "4", "--classes", "3", "--tags", "5", "--steps", "1",
          "--repeats", "1", "--ref-repeats", "1", "--write-doc", "--doc", str(doc)]
  kernels = ["triplet all", "triplet batch_hard", "proxy_nca multi-label"]
  result = loss_bench.main(args + ["--kernels", ",".join(kernels)])
  assert list(result["kernels"]) == kernels
  for name, k in result["kernels"].items():
    np.testing.assert_allclose(k["value"], k["reference_value"], rtol=1e-4, atol=1e-5,
                               err_msg=name)
    # The in-step loop evaluates the kernel on x * (1 + i * 1e-7): the same value each time.
    np.testing.assert_allclose(k["in_step_mean_value"], k["value"], rtol=1e-4, atol=1e-5,
                               err_msg=name)
    assert k["jit_s"]["median"] > 0 and k["speedup"] > 0 and k["speedup_in_step"] > 0
  out = capsys.readouterr().out
  assert "| triplet batch_hard | 12 | 4 |" in out
  loss_bench.main(args + ["--kernels", "softmax_cross_entropy"])
  text = doc.read_text()
  assert "kept text" in text
  assert text.count("<!-- bench:loss-kernels-b12-d4:begin -->") == 1
  assert "## Loss kernels, batch 12, dim 4" in text
  assert "| softmax_cross_entropy |" in text and "| triplet all |" not in text
  assert (tmp_path / "plots" / "loss_kernels.png").stat().st_size > 1000
