"""``musicrep plan``: compile a config's steps for an accelerator topology and report its cost."""

HELP = "compile a config for a TPU topology (or this host) and report memory, FLOPs, roofline"
DESCRIPTION = (
    "Builds the run as `musicrep train` does, over the devices of a TPU topology (e.g. v5e:2x2, "
    "v5e:16x16, v5p:4x4x4; needs libtpu: pip install 'musicrep-jax[tpu]') or of this host "
    "(--topology local), compiles the train and eval steps from abstract shapes (no data and "
    "no accelerator needed), and prints HBM per chip against the chip's capacity, FLOPs and "
    "bytes per step, a roofline step time, MFU and samples/s bounds, and the collectives; then "
    "one JSON line. Tagging and classification configs need no data (--num-outputs sets the "
    "tag or class count); the tasks that read records when they bind (metric learning, DCUE, "
    "zero-shot) use the embedded corpus unless --data-dir is given, so tables sized by the data "
    "(users, artists) are the corpus's. Override any value with --config.k=v, "
    "e.g. --config.batch_size=4096 --config.mesh.fsdp=4 --config.compute_dtype=bfloat16. "
    "docs/scaling.md: every config on v5e-16, v5e-256 and v5p-128.")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True, help="a name like samplecnn_mtat, or X.py[:arg]")
  parser.add_argument("--topology", default="local",
                      help="TPU topology KIND:AxB[xC] (v5e:2x2, v5p:4x4x4) or local")
  parser.add_argument("--num-outputs", type=int, default=None,
                      help="tag or class count (default: the config's dataset's)")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards to bind the task to (default: a stand-in with "
                           "no records for tagging and classification, the embedded corpus for "
                           "the other tasks)")
  parser.add_argument("--max-batch", action="store_true",
                      help="find the largest per-chip batch that fits the chip's HBM")


def run(args, overrides) -> dict:
  from musicrep_jax import config_loading
  from musicrep_jax.errors import UserError

  config = config_loading.load_config(args.config, overrides,
                                      runner=config_loading.DEFAULT_RUNNER)
  if args.num_outputs is not None and args.num_outputs < 1:
    raise UserError(f"--num-outputs={args.num_outputs} must be at least 1.")
  from musicrep_jax.training import plan

  result = plan.plan(config, topology_name=args.topology, config_name=args.config,
                     num_outputs=args.num_outputs, data_dir=args.data_dir,
                     max_batch=args.max_batch, progress=lambda line: print(line, flush=True))
  print(plan.format_report(result))
  return result
