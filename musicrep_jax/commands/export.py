"""``musicrep export``: a trained workdir as safetensors (+ PyTorch mirror), ONNX, StableHLO."""

HELP = "export a workdir's model as safetensors, ONNX and/or StableHLO (each checked)"
DESCRIPTION = (
    "Writes model.safetensors (flat weights named as the PyTorch mirror's state_dict, see "
    "docs/export.md), model.onnx (dynamic batch, checked with onnxruntime) and/or "
    "model.stablehlo (jax.export, symbolic batch) into --out, with export_info.json. Each file "
    "is read back, run and compared with the Flax model; a mismatch is an error. safetensors "
    "and onnx need the optional packages of the `export` extra (torch, safetensors, onnx, "
    "onnxscript, onnxruntime). Ends with one JSON line.")

FORMAT_CHOICES = ("all", "safetensors", "onnx", "stablehlo")


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="a training workdir (config.json + "
                      "checkpoints), local or gs://...")
  parser.add_argument("--out", required=True, help="folder for the exported files: local or "
                      "gs://... (any etils.epath URI; uploaded once every parity check passed)")
  parser.add_argument("--format", action="append", choices=FORMAT_CHOICES, default=None,
                      help="repeatable; default: all")
  parser.add_argument("--data-dir", default=None,
                      help="the prepared shards the model was trained on (for the tag names); "
                           "not needed for the embedded synthetic corpus")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.errors import UserError
  from musicrep_jax.serving.export import exporter
  from musicrep_jax.serving.inference import load_trained

  formats = args.format or ["all"]
  formats = list(exporter.FORMATS) if "all" in formats else list(dict.fromkeys(formats))
  missing = {f: exporter.missing_packages(f) for f in formats}
  missing = {f: m for f, m in missing.items() if m}
  if missing:
    raise UserError("Export formats need packages that are not installed: " + "; ".join(
        f"{f}: {', '.join(m)}" for f, m in missing.items()) +
        " (pip install 'musicrep-jax[export]').")
  trained = load_trained(args.workdir, args.data_dir, args.checkpoint)
  try:
    info = exporter.export_model(trained.model, trained.variables, args.out,
                                 sample_rate=trained.sample_rate, tag_names=trained.tag_names,
                                 formats=formats)
  except ValueError as error:  # A model family without an export layout.
    raise UserError(f"Cannot export {args.workdir}: {error}.") from None
  print(f"Exported {info['family']} (step {trained.step}) to {args.out}:")
  summary = {"family": info["family"], "step": trained.step, "out": str(args.out)}
  for fmt, entry in info["formats"].items():
    worst = max(r["max_abs_err"] / r["scale"] for r in entry["parity"].values())
    print(f"  {entry['file']:>18}: {entry['bytes']:,} bytes, max |export - flax| / scale "
          f"{worst:.1e} (tolerance {info['tolerance']:.0e})")
    summary[f"{fmt}_rel_err"] = worst
  return summary
