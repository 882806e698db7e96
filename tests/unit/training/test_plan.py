"""The pieces of ``musicrep plan`` that need no TPU: collectives read from HLO text, the roofline,
the batch search, the stand-ins for data (metadata, the embedded corpus, zero-shot word
vectors), and a whole
plan of the tiny config on this host's CPU (the compile path ``--topology local`` takes).
The TPU-topology runs through the CLI are in tests/e2e/test_plan_cli.py."""

import jax
import numpy as np
import pytest

from musicrep_jax import config_loading
from musicrep_jax.errors import UserError
from musicrep_jax.training import chips, plan
from tests.configs import tiny as tiny_config

HLO = """
  %all-reduce.3 = f32[128,64]{1,0} all-reduce(f32[128,64]{1,0} %p), replica_groups={{0,1}}
  %ar-start = (bf16[10]{0}, s32[4]{0}) all-reduce-start(bf16[10]{0} %a, s32[4]{0} %b)
  %ar-done = (bf16[10]{0}, s32[4]{0}) all-reduce-done((bf16[10]{0}, s32[4]{0}) %ar-start)
  %ag = f32[8,1024]{1,0:T(8,128)} all-gather(f32[2,1024]{1,0} %x), dimensions={0}
  ROOT %rs.1 = bf16[256]{0} reduce-scatter(bf16[1024]{0} %y), dimensions={0}
  %cp-start = (f32[16]{0}, f32[16]{0}, u32[], u32[]) collective-permute-start(f32[16]{0} %z)
  %cp-done = f32[16]{0} collective-permute-done((f32[16]{0}, f32[16]{0}, u32[], u32[]) %cp-start)
  %add = f32[128,64]{1,0} add(f32[128,64]{1,0} %all-reduce.3, f32[128,64]{1,0} %q)
"""


def test_collectives_counts_each_op_once_with_its_result_bytes():
  found = plan.collectives(HLO)
  assert found["all-reduce"] == {"count": 2, "bytes": 128 * 64 * 4 + 10 * 2 + 4 * 4}
  assert found["all-gather"] == {"count": 1, "bytes": 8 * 1024 * 4}
  assert found["reduce-scatter"] == {"count": 1, "bytes": 256 * 2}
  assert found["collective-permute"] == {"count": 1, "bytes": 16 * 4}
  assert found["all-to-all"] == {"count": 0, "bytes": 0}


def test_shape_bytes_of_tuples_and_scalars():
  assert plan.shape_bytes("(f32[3,3]{1,0}, pred[], s64[2])") == 36 + 1 + 16
  assert plan.shape_bytes("token[]") == 0


def test_roofline_picks_the_slower_of_compute_and_memory():
  spec = chips.CHIPS["TPU v5 lite"]
  flops, bytes_ = 1e12, 1e9
  line = plan.roofline(flops, bytes_, spec.peak_bf16, spec.hbm_bandwidth)
  assert line["step_time_s"] == max(flops / spec.peak_bf16, bytes_ / spec.hbm_bandwidth)
  assert line["bound"] == ("compute" if flops / bytes_ > spec.peak_bf16 / spec.hbm_bandwidth
                           else "memory")
  low = plan.roofline(1e9, 1e9, spec.peak_bf16, spec.hbm_bandwidth)
  assert low["bound"] == "memory" and low["mfu_bound"] < 1.0
  high = plan.roofline(1e15, 1e9, spec.peak_bf16, spec.hbm_bandwidth)
  assert high["bound"] == "compute" and high["mfu_bound"] == 1.0


def test_xla_out_of_memory_becomes_a_plan_that_does_not_fit():
  message = ("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory "
             "space hbm. Used 167.52G of 15.75G hbm. Exceeded hbm capacity by 151.77G.\n"
             "the total memory required for HLO temporaries (167.52G) exceeds available HBM "
             "(15.75G).")
  compiled = plan.out_of_memory(message, 1.0)
  assert compiled.out_of_memory and compiled.hbm_bytes == int(167.52 * 2 ** 30)
  assert plan.out_of_memory("INVALID_ARGUMENT: no lowering for op", 1.0) is None


def test_chip_specs_by_device_kind():
  assert chips.chip_spec("NVIDIA H100 80GB HBM3").name.startswith("NVIDIA H100")
  assert chips.chip_spec("cpu") is None
  half = chips.CHIPS["TPU v4"].per_device(2)
  assert half.hbm_bytes * 2 == chips.CHIPS["TPU v4"].hbm_bytes


@pytest.mark.parametrize("limit,start", [(37, 4), (1, 8), (64, 1), (0, 2), (5000, 3)])
def test_max_batch_search_finds_the_largest_fitting_batch(limit, start):
  tried = []

  def fits(b):
    tried.append(b)
    return b <= limit

  assert plan.max_per_device_batch(fits, start=start) == limit
  assert len(tried) <= 2 * (int(np.log2(max(limit, start, 1))) + 2)


def test_stand_ins_metadata_for_tagging_and_the_embedded_corpus_for_tasks_that_read_records():
  # A metric-learning config binds to the embedded corpus (rendered small here), whose records
  # its label tables read; the report says so.
  config = config_loading.load_config("siamese_artist_dcnn", [
      "--config.data.synthetic.num_clips=60", "--config.data.synthetic.clip_seconds=1.0",
      "--config.data.sample_rate=8000"])
  shards = plan.plan_shards(config, "siamese_artist_dcnn")
  assert not isinstance(shards, plan.MetadataShards)
  assert len(shards.source("train")) > 0
  assert plan.data_description(shards, None).startswith("embedded corpus stand-in (24 tags")
  # Tagging without a known output count asks for one; with it, no records are read.
  config = config_loading.load_config("samplecnn_mtat", ["--config.data.name=elsewhere"])
  with pytest.raises(UserError, match="--num-outputs"):
    plan.plan_shards(config, "samplecnn_mtat")
  shards = plan.plan_shards(config, "samplecnn_mtat", num_outputs=7)
  assert len(shards.tag_names) == 7
  assert plan.data_description(shards, None) == "metadata stand-in (7 outputs, no records)"
  with pytest.raises(UserError, match="--data-dir"):
    len(shards.source("train"))


def test_zero_shot_without_word_vectors_gets_300d_stand_in_vectors_for_every_tag():
  from musicrep_jax.data.word_vectors import load_word_vectors

  config = config_loading.load_config("zero_shot", [])
  assert not config.task.kwargs.word_vectors
  tags = ("hip hop", "female_vocal", "r&b", "guitar")
  planned = plan.with_standin_word_vectors(config, plan.MetadataShards(4, 16000, "zero_shot"))
  vectors, found = load_word_vectors(planned.task.kwargs.word_vectors).label_matrix(
      [f"output_{i}" for i in range(4)])
  assert vectors.shape == (4, plan.STANDIN_VECTOR_DIM) and found.all()
  assert not config.task.kwargs.word_vectors  # the caller's config is left as it was

  class Tagged:
    tag_names = tags
  planned = plan.with_standin_word_vectors(config, Tagged())
  _, found = load_word_vectors(planned.task.kwargs.word_vectors).label_matrix(list(tags))
  assert found.all()
  # A config naming its own vectors, or another task, is unchanged.
  other = config_loading.load_config("samplecnn_mtat", [])
  assert plan.with_standin_word_vectors(other, Tagged()) is other


def test_plan_of_the_tiny_config_on_this_host():
  config = tiny_config.get_config()
  config.task.name = "classification"
  config.task.kwargs = {"label_field": "genre"}
  result = plan.plan(config, topology_name="local", config_name="tiny", num_outputs=5)
  n = len(jax.devices())
  assert result["global_batch"] == config.batch_size
  assert result["per_chip_batch"] == config.batch_size // n
  assert result["param_count"] > 0
  assert result["param_bytes_per_chip"] == 4 * result["param_count"]  # replicated float32
  assert result["hbm_argument_bytes"] >= result["state_bytes_per_chip"]
  assert result["flops_per_chip"] > 0 and result["bytes_accessed_per_chip"] > 0
  assert result["eval_flops_per_chip"] < result["flops_per_chip"]
  if jax.devices()[0].platform == "cpu":
    assert result["fits"] is None and result["chip"] is None
  text = plan.format_report(result)
  assert "HBM per chip" in text and "collectives" in text
  assert all(not isinstance(v, (dict, list)) for v in result.values())


def test_max_batch_plan_stops_at_the_chip_capacity(monkeypatch):
  # The search wired into plan(): compiles stand in as 1 MB per example per device on a chip
  # of 100.5 MB, so the largest fitting per-device batch is 100 (the real compile path is
  # test_plan_of_the_tiny_config_on_this_host; the TPU one, tests/e2e/test_plan_cli.py).
  per_example = 2 ** 20
  probed = []

  def fake_compile(self, batch_size):
    per_device = batch_size // len(self.topology.devices)
    probed.append(per_device)
    return plan.Compiled(argument_bytes=0, output_bytes=0, alias_bytes=0,
                         temp_bytes=per_device * per_example, code_bytes=0, flops=1e9,
                         bytes_accessed=1e8, collectives=plan.collectives(""), compile_s=0.0)

  monkeypatch.setattr(plan.Planner, "compile_train", fake_compile)
  monkeypatch.setattr(plan.Planner, "compile_eval", fake_compile)
  fake = chips.ChipSpec("test chip", 100.5 * per_example, 1e12, 1e12, 1e11, "test")
  monkeypatch.setattr(chips, "chip_spec", lambda kind: fake)
  config = tiny_config.get_config()
  result = plan.plan(config, topology_name="local", config_name="tiny", max_batch=True)
  n = len(jax.devices())
  assert result["max_batch_searched"] and result["per_chip_batch"] == 100
  assert result["global_batch"] == 100 * n and result["fits"] is True
  assert result["step_time_s"] == max(1e9 / 1e12, 1e8 / 1e11)
  assert len(probed) < 20
