"""bench/memory_floor.py: the floor of a tiny SampleCNN equals a hand count of its layer list,
and the measured side returns the compiled step's bytes per example on this host's CPU."""

import jax.numpy as jnp
import pytest

from musicrep_jax.bench import memory_floor
from musicrep_jax.models.sample_cnn import SampleCNN

# m = 3, n = 2: input 27 samples; channels conv0 2, block1 3, block2 4, 1x1 conv 5; 6 outputs.
TINY = dict(num_outputs=6, m=3, n=2, channels=(2, 3, 4, 5))
# Elements per example of the layers' inputs and outputs, by hand from sample_cnn.py's layer
# list (a ReLU output counts only where it is the next conv's input; pools feed convs):
LAYER = (27                 # audio, input of conv0
         + 3 * 9 * 2        # conv0: conv, BN, ReLU (= block1's conv input; no pool), 9 x 2
         + 2 * 9 * 3 + 3 * 3  # block1: conv, BN at 9 x 3; pool to 3 x 3 (conv input)
         + 2 * 3 * 4 + 1 * 4  # block2: conv, BN at 3 x 4; pool to 1 x 4
         + 2 * 1 * 5        # 1x1 conv: conv, BN
         + 5 + 5            # ReLU output reshaped to [batch, 5] (dropout input), dropout output
         + 6)               # logits
MATMUL = 27 + 9 * 2 + 9 * 2 + 9 * 3 + 3 * 3 + 3 * 4 + 4 + 5 + 5 + 6  # conv/dense in- and outputs
PARAMS = (3 * 1 * 2 + 2 + 2 * 2) + (3 * 2 * 3 + 3 + 2 * 3) + (3 * 3 * 4 + 4 + 2 * 4) + (
    1 * 4 * 5 + 5 + 2 * 5) + (5 * 6 + 6)  # conv kernel + bias, BN scale + bias; dense


def test_floor_of_a_tiny_sample_cnn_equals_the_hand_count():
  assert LAYER == 198 and MATMUL == 131 and PARAMS == 158
  f = memory_floor.floor(SampleCNN(**TINY), batch=8)
  assert f["layer_activation_bytes"] == 4 * LAYER
  assert f["fused_activation_bytes"] == 4 * MATMUL
  assert f["param_bytes_per_example"] == pytest.approx(7 * 4 * PARAMS / 8)
  assert f["layer"] == pytest.approx(4 * 4 * LAYER + 7 * 4 * PARAMS / 8)
  assert f["fused"] == pytest.approx(4 * 4 * MATMUL + 7 * 4 * PARAMS / 8)
  # bfloat16 compute halves every activation but the float32 input and logits.
  half = memory_floor.floor(SampleCNN(**TINY, dtype=jnp.bfloat16), batch=8)
  assert half["layer_activation_bytes"] == 4 * (27 + 6) + 2 * (LAYER - 27 - 6)
  # The floor belongs to the layers, not to the pool's formulation.
  assert memory_floor.floor(SampleCNN(**TINY, pool_impl="window"), batch=8) == f
  assert half["param_bytes_per_example"] == f["param_bytes_per_example"]


def test_compiled_bytes_per_example_on_cpu(capsys):
  # The :runlocal 3^5 model (729 samples, 16..64 channels) compiles in a few seconds.
  rows = memory_floor.main(["--configs", "samplecnn_mtat:runlocal", "--dtypes", "float32",
                            "--per-chip-batch", "4", "--topologies", "local"])
  (row,) = rows
  assert row["device_kind"] == "cpu" and row["floor"]["batch"] == 4
  # XLA reads each example's 729 float32 samples, and every activation's bytes at least once
  # (the fused floor counts each of them four times).
  assert row["bytes_per_example"] > 4 * 729 + row["floor"]["fused_activation_bytes"]
  assert "| samplecnn_mtat:runlocal | float32 | local |" in capsys.readouterr().out


def test_vmem_prefetch_flag_is_added_and_removed_keeping_other_libtpu_flags():
  env = {"LIBTPU_INIT_ARGS": "--xla_foo=1"}
  memory_floor.set_vmem_prefetch(False, env)
  memory_floor.set_vmem_prefetch(False, env)  # idempotent
  assert env["LIBTPU_INIT_ARGS"] == "--xla_foo=1 " + memory_floor.NO_VMEM_PREFETCH
  memory_floor.set_vmem_prefetch(True, env)
  assert env == {"LIBTPU_INIT_ARGS": "--xla_foo=1"}
  empty = {}
  memory_floor.set_vmem_prefetch(True, empty)
  assert empty == {}
  assert memory_floor.parse_args(["--vmem-prefetch", "off"]).vmem_prefetch == "off"
