"""``musicrep prepare msd_zsl``: MSD with paper 10's 1,126 Last.fm tags (zero-shot)."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "MSD previews + 1,126 Last.fm tags, paper 10's zero-shot word-vector setup"
DESCRIPTION = ("--manual-dir holds track_metadata.db, lastfm_tags.db and the previews as "
               "<d0>/<d1>/<7digital id>.clip.mp3. Tags: --tag-list FILE (one per line), else "
               "the --num-tags most frequent (with a vector in --word-vectors if given). Every "
               "track carrying a tag, split 80/10/10 by a hash of its id; 406,409 tracks in all "
               "checked for 1,126 tags before decoding (use --allow-count-mismatch for a "
               "partial copy or another tag list).")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)
  parser.add_argument("--tag-list", default=None,
                      help="text file of the tags, one per line (default: the most frequent)")
  parser.add_argument("--num-tags", type=int, default=None,
                      help="how many of the most frequent tags (default 1126, the paper's)")
  parser.add_argument("--tag-threshold", type=float, default=None,
                      help="a Last.fm value above this counts as the tag (default 50)")
  parser.add_argument("--word-vectors", default=None,
                      help="GloVe / word2vec file: only tags with a vector are chosen")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import msd_zsl_builder

  return _layout_args.prepare(msd_zsl_builder.MusicrepMsdZsl, args, tag_list=args.tag_list,
                              num_tags=args.num_tags, tag_threshold=args.tag_threshold,
                              word_vectors=args.word_vectors)
