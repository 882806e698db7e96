"""Metrics to TensorBoard event files (tensorboardX: no TensorFlow) and to ``metrics.jsonl``.

Only process 0 writes. Each JSONL line is ``{"step": int, "split": str, <metric>: float, ...}``;
TensorBoard tags are ``<split>/<metric>``.
"""

from __future__ import annotations

import json
import math
import pathlib
import time

import jax


class MetricWriter:
  """Writes scalars for one run directory; a no-op on processes other than 0."""

  def __init__(self, logdir: str | pathlib.Path):
    self.logdir = pathlib.Path(logdir)
    self.active = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if self.active:
      self.logdir.mkdir(parents=True, exist_ok=True)
      from tensorboardX import SummaryWriter  # Lazy: only the writing process needs it.

      self._tb = SummaryWriter(str(self.logdir / "tensorboard"))
      self._jsonl = open(self.logdir / "metrics.jsonl", "a", buffering=1)

  def write(self, step: int, split: str, scalars: dict) -> None:
    if not self.active:
      return
    clean = {k: float(v) for k, v in scalars.items()}
    for key, value in clean.items():
      if math.isfinite(value):
        self._tb.add_scalar(f"{split}/{key}", value, step)
    record = {"step": int(step), "split": split, "time": time.time()}
    record.update({k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()})
    self._jsonl.write(json.dumps(record) + "\n")

  def flush(self) -> None:
    if self.active:
      self._tb.flush()
      self._jsonl.flush()

  def close(self) -> None:
    if self.active:
      self._tb.close()
      self._jsonl.close()
      self.active = False


def read_jsonl(path: str | pathlib.Path) -> list[dict]:
  """All records of a ``metrics.jsonl`` file."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
