"""``musicrep stage``: copy a remote data dir (gs://...) to this host's disk."""

HELP = "copy prepared shards from gs:// (or another remote store) to a local folder"
DESCRIPTION = ("ArrayRecord reads shards from local files only, so a remote --data-dir is copied "
               "to each host before training; train and eval do this themselves into "
               "$MUSICREP_CACHE/staged/. Run this to choose the folder (e.g. a local SSD), then "
               "pass it as --data-dir. Files already there with the same size are skipped.")


def add_arguments(parser) -> None:
  parser.add_argument("--data-dir", required=True, help="the remote prepared shards, gs://...")
  parser.add_argument("--out", default=None,
                      help="local folder (default: a folder under $MUSICREP_CACHE/staged/)")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.data.shards import open_shards
  from musicrep_jax.training.run_data import stage_data_dir

  out = stage_data_dir(args.data_dir, args.out)
  shards = open_shards(out)
  print(f"Staged {args.data_dir} into {out}: splits "
        + ", ".join(f"{k} ({v})" for k, v in shards.split_sizes.items()))
  return {"data_dir": str(out), "source": args.data_dir}
