"""``run_data.resolve_shards`` renders the embedded corpus with progress bars on stderr only when
the run's ``config.progress_bar`` is on (``ensure_synthetic``'s ``progress``)."""

from musicrep_jax import config_loading
from musicrep_jax.training import run_data
from tests.helpers import TINY_CONFIG


def test_synthetic_rendering_respects_progress_bar(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("MUSICREP_CACHE", str(tmp_path))
  config = config_loading.load_config_file(TINY_CONFIG)
  config.data.synthetic = dict(num_clips=60, seed=0, clip_seconds=0.5)
  for bar, seed in ((False, 0), (True, 1)):  # A fresh corpus (another seed) each time.
    config.progress_bar = bar
    config.data.synthetic.seed = seed
    shards = run_data.resolve_shards(config, None)
    assert shards.sample_rate == config.data.sample_rate
    err = capsys.readouterr().err
    assert ("Rendering train" in err) == bar, err[-2000:]
