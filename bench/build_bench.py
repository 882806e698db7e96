"""Dataset build throughput: clips/s of ``musicrep prepare mtat`` on a generated MTAT-like copy.

Writes ``--clips`` mp3s of ``--seconds`` (16 kHz mono, like MagnaTagATune's 29.1 s clips) in
MTAT's layout into a temporary folder, then times the real build (``dataset_layouts
.prepare_layout`` with the ``full`` split: header probe, mp3 decode, resample, int16 ArrayRecord
write) for each ``--rates`` x ``--workers`` (decoding threads), with the decode cache on (the
default) and, for the last setting, off. Each build starts from an empty output folder.

Reports clips/s and x real time (audio seconds written per wall second) from the build's own
``prepare_report.json``. ``--write-doc`` updates the ``dataset-build`` section of
``docs/benchmarks.md``.

Example::

  musicrep bench build --clips 48 --workers 1,2 --write-doc
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import shlex
import sys
import tempfile
from typing import Optional, Sequence

import numpy as np

from musicrep_jax.bench.report import DOC, machine, machine_line, pin_threads, replace_section

TAGS = ("guitar", "classical", "slow", "techno", "rock")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="musicrep bench build",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--clips", type=int, default=48, help="mp3 clips in the copy (default 48)")
  p.add_argument("--seconds", type=float, default=29.1, help="seconds per clip (default 29.1)")
  p.add_argument("--rates", default="22050,16000", help="sample rates to build (Hz)")
  p.add_argument("--workers", default="1,2", help="decoding threads to try")
  p.add_argument("--threads", type=int, default=None, help="pin the process to this many CPUs")
  p.add_argument("--write-doc", action="store_true", help="update docs/benchmarks.md")
  return p.parse_args(argv)


def write_mtat_copy(root: pathlib.Path, clips: int, seconds: float) -> None:
  """``clips`` 16 kHz mono mp3s in folders 0-f plus an ``annotations_final.csv``."""
  import soundfile as sf

  rng = np.random.default_rng(0)
  t = np.arange(int(seconds * 16000)) / 16000
  lines = ["\t".join(f'"{h}"' for h in ("clip_id", *TAGS, "mp3_path"))]
  for i in range(clips):
    path = f"{'0123456789abcdef'[i % 16]}/artist{i}-album-01-song-0-29.mp3"
    chord = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, 3))
    audio = (0.2 * chord + 0.05 * rng.standard_normal(t.size)).astype(np.float32) / 3
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(root / path, audio, 16000, format="MP3")
    tags = [str(int(rng.random() < 0.3)) for _ in TAGS]
    lines.append("\t".join(f'"{c}"' for c in (str(i), *tags, path)))
  (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")


def time_build(manual_dir: pathlib.Path, out: pathlib.Path, rate: int, workers: int,
               resumable: bool) -> dict:
  from musicrep_jax.data_pipelines import dataset_layouts, mtat_builder

  report = dataset_layouts.prepare_layout(
      mtat_builder.MusicrepMtat, out, manual_dir=manual_dir, variant="full", sample_rate=rate,
      expected_counts=None, layout_options={"num_tags": len(TAGS)}, resumable=resumable,
      workers=workers, progress=False)
  return {"sample_rate": rate, "workers": workers, "resumable": resumable,
          "clips": report["written"], "seconds": report["seconds"],
          "clips_per_second": report["clips_per_second"], "x_realtime": report["x_realtime"]}


def doc_section(results: list[dict], args, info: dict, threads: int) -> str:
  rows = "\n".join(
      f"| {r['sample_rate']} | {r['workers']} | {'on' if r['resumable'] else 'off'} | "
      f"{r['clips']} | {r['seconds']:.2f} | **{r['clips_per_second']:.1f}** | "
      f"{r['x_realtime']:.0f}x |" for r in results)
  command = "musicrep bench build " + " ".join(shlex.quote(a) for a in sys.argv[1:])
  return f"""### Dataset build throughput (`musicrep prepare mtat`, generated MTAT-like copy)

{args.clips} mp3 clips of {args.seconds:g} s (16 kHz mono, MagnaTagATune's format) in MTAT's
layout; the `full` split built from an empty output folder: header probe, mp3 decode (libsndfile),
resampling, int16 ArrayRecord write. Clips/s and x real time come from `prepare_report.json`.

| rate (Hz) | decode threads | decode cache | clips | s | clips/s | x real time |
| --- | --- | --- | --- | --- | --- | --- |
{rows}

{machine_line(info, threads)}
- Measured {datetime.date.today().isoformat()}: `{command}`"""


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
  args = parse_args(argv)
  threads = pin_threads(args.threads)
  rates = [int(r) for r in args.rates.split(",")]
  workers = [int(w) for w in args.workers.split(",")]
  results = []
  with tempfile.TemporaryDirectory(prefix="build_bench_") as tmp:
    manual_dir = pathlib.Path(tmp) / "mtat"
    write_mtat_copy(manual_dir, args.clips, args.seconds)
    settings = [(r, w, True) for r in rates for w in workers] + [(rates[-1], workers[-1], False)]
    for n, (rate, w, resumable) in enumerate(settings):
      results.append(time_build(manual_dir, pathlib.Path(tmp) / f"out{n}", rate, w, resumable))
      print(json.dumps(results[-1]))
  if args.write_doc:
    replace_section(DOC, "dataset-build", doc_section(results, args, machine(), threads))
  return results


if __name__ == "__main__":
  main()
