"""Each architecture trains on the embedded corpus and beats chance on held-out clips (issue 3).

Runs each config's ``:runlocal`` variant (the demo's corpus: 600 clips, 60 held out) through the
CLI. SampleCNN is covered by the demo test in test_cli.py.
"""

import json

import pytest

from musicrep_jax import cli

pytestmark = pytest.mark.slow

# Chance is 0.5 ROC-AUC. Measured on 2026-11-24: ReSE-2 multi-level 0.818, mel frame CNN 0.771,
# the 2-D CNN baseline (Choi's FCN, narrow) 0.851, paper 4's mel DCNN on tags 0.809.
MIN_ROC_AUC = 0.68


@pytest.mark.parametrize("config", ["configs/resemul_mtat.py:runlocal",
                                    "configs/mel_frame_cnn_mtat.py:runlocal",
                                    "configs/mel_cnn2d_mtat.py:runlocal",
                                    "configs/mel_dcnn_mtat.py:runlocal"])
def test_architecture_beats_chance_on_held_out_clips(config, tmp_path, capsys):
  assert cli.main(["train", "--config", config, "--workdir", str(tmp_path),
                   "--config.progress_bar=false"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["split"] == "test" and result["clips"] == 60
  assert result["roc_auc"] >= MIN_ROC_AUC, result
