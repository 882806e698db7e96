"""``musicrep export``: a trained workdir as a model folder (``pretrained``), safetensors (+ the
PyTorch mirror), ONNX and/or StableHLO."""

HELP = ("export a workdir's model as a model folder with a model card, safetensors, ONNX and/or "
        "StableHLO (each checked)")
DESCRIPTION = (
    "Writes into --out: with --format pretrained a self-describing model folder (Hugging Face "
    "Hub layout: model.safetensors, modeling_musicrep.py that runs it with PyTorch alone, "
    "config.json, musicrep.json with the input contract, eval_results.json and a model card "
    "README.md) that musicrep_jax.load(DIR) reads without the workdir; model.safetensors (flat "
    "weights named as the PyTorch mirror's state_dict, see docs/export.md), model.onnx "
    "(dynamic batch, checked with onnxruntime) and/or model.stablehlo (jax.export, symbolic "
    "batch); always export_info.json. Each file is read back, run and compared with the Flax "
    "model; a mismatch is an error. pretrained, safetensors and onnx need the optional "
    "packages of the `export` extra (torch, safetensors, onnx, onnxscript, onnxruntime). Ends "
    "with one JSON line.")

FORMAT_CHOICES = ("all", "pretrained", "safetensors", "onnx", "stablehlo")


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="a training workdir (config.json + "
                      "checkpoints), local or gs://...")
  parser.add_argument("--out", required=True, help="folder for the exported files: local or "
                      "gs://... (any etils.epath URI; uploaded once every parity check passed)")
  parser.add_argument("--format", action="append", choices=FORMAT_CHOICES, default=None,
                      help="repeatable; default: all (the model folder with every format)")
  parser.add_argument("--data-dir", default=None,
                      help="the prepared shards the model was trained on (for the tag names); "
                           "by default the data the run recorded (run_info.json)")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.errors import UserError
  from musicrep_jax.serving.export import exporter, pretrained
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
    if "pretrained" in formats:
      info = pretrained.write_model_folder(args.workdir, args.out, data_dir=args.data_dir,
                                           formats=formats, trained=trained)
    else:
      info = exporter.export_model(trained.model, trained.variables, args.out,
                                   sample_rate=trained.sample_rate,
                                   tag_names=trained.tag_names, formats=formats)
  except ValueError as error:  # A model family without an export layout.
    raise UserError(f"Cannot export {args.workdir}: {error}.") from None
  print(f"Exported {info['family']} (step {trained.step}) to {args.out}:")
  summary = {"family": info["family"], "step": trained.step, "out": str(args.out)}
  for fmt, entry in info["formats"].items():
    worst = max(r["max_abs_err"] / r["scale"] for r in entry["parity"].values())
    print(f"  {entry['file']:>20}: {entry['bytes']:,} bytes, max |export - flax| / scale "
          f"{worst:.1e} (tolerance {info['tolerance']:.0e})")
    summary[f"{fmt}_rel_err"] = worst
  if "eval_results" in info:
    print(f"  model folder: {', '.join(info['files'])}; {len(info['eval_results'])} recorded "
          f"evaluation number(s) in eval_results.json")
    summary["eval_results"] = len(info["eval_results"])
  return summary
