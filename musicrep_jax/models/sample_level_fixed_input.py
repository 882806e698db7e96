"""The sample-level block models on an input length that is not a power of ``m``: the journal
code's 1-s models for keyword spotting and acoustic scenes (paper 6, papers.md 7.2).

``resemul`` consumes ``m ** (n + 1)`` samples (59,049 for 3^9). Paper 6's speech and DCASE models
take **22,050 samples (1 s at 22,050 Hz)** with **8 blocks** and a 'same'-padded strided first
conv, so the time axis shrinks 22050 -> 7350 -> 2450 -> 816 -> 272 -> 90 -> 30 -> 10 -> 3 -> 1
(papers.md 7.2, [derived]). This module is ``resemul`` (``SampleCNNBlocks``, same parameters and
blocks) with that length stated: ``input_samples`` is the crop the pipeline cuts and the
length the model checks; ``first_padding`` defaults to 'SAME' as in the journal code.

Both models of paper 6 are this class (papers.md 7.1): "SampleCNN" is ``block='basic',
multi_level=False`` (the head Dense + BN + ReLU equals SampleCNN's 1x1 conv on a length-1
sequence, papers.md 6.2); "ReSE-2-Multi" is ``block='rese2', multi_level=True``.
"""

from __future__ import annotations

from musicrep_jax.models.resemul import SampleCNNBlocks
from musicrep_jax.registry import MODELS


@MODELS.register("sample_level_fixed_input")
class SampleLevelFixedInput(SampleCNNBlocks):
  """``SampleCNNBlocks`` on ``[batch, input_samples, 1]``; returns ``{"logits", "embedding"}``.

  Attributes (besides those of ``SampleCNNBlocks``):
    input_samples: samples per example (22,050 = 1 s at 22,050 Hz in paper 6).
  """

  input_samples: int = 22050
  first_padding: str = "SAME"

  @property
  def input_length(self) -> int:
    return int(self.input_samples)


# Paper 6's two models (papers.md 7.1), as ``config.model.kwargs`` of this class: the 8-block
# 1-s models of the journal code (papers.md 7.2) with paper 5's blocks (alpha = 16).
PAPER6_MODELS = {
    "basic": dict(block="basic", multi_level=False),
    "improved": dict(block="rese2", multi_level=True),
}


def paper6_model_kwargs(variant: str, input_samples: int = 22050) -> dict:
  """``config.model.kwargs`` of paper 6's ``"basic"`` (SampleCNN) or ``"improved"``
  (ReSE-2-Multi) model on ``input_samples``-sample segments (8 blocks, 'same' first conv)."""
  if variant not in PAPER6_MODELS:
    raise ValueError(f"paper 6 models are {', '.join(PAPER6_MODELS)}; got {variant!r}")
  return dict(PAPER6_MODELS[variant], input_samples=input_samples, m=3, n=8, init_features=128,
              channels=None, amplifying_ratio=16.0, block_dropout_rate=0.2, dropout_rate=0.5,
              first_padding="SAME", bn_momentum=0.99, bn_epsilon=1e-3)
