"""Zero-shot tagging (paper 10, papers.md 11): audio and tag word vectors in one space.

Paper settings: 130-frame mel excerpts at 22,050 Hz, the paper-10 audio branch (100-d), a linear
label branch on 300-d word vectors, hinge margin 0.4 with 1 negative, SGD-Nesterov lr 0.001 with
Keras decay 1e-6, Keras L2 1e-5 on the audio branch's conv kernels (``optimizer.kernel_l2``,
papers.md 11.3; the label branch's Dense kernel has none, [unknown]), batch 64. Data: the MSD
1,126-tag set (``musicrep prepare msd_zsl``, ``data_pipelines/msd_zsl_builder.py``); the
MSD-50 shards of ``musicrep prepare msd`` work too. Split: ``int(0.8 n)`` of the bound shards'
own tags seen, seeded (``task.kwargs.train_tag_names`` empty; MSD-50: 40 seen / 10 unseen;
1,126 tags: 900 / 226, the paper's table); the split is recorded in the workdir's
``run_info.json`` (``tag_split``; ``task.kwargs.seen_tag_names`` takes such a list).
Training set B (``train_set="B"``, the tracks annotated with seen and unseen tags, trained on
their seen tags): papers.md 11.7 reports A, B and A+B rows; B-X is the headline row of the
annotation table ((B+C)-Y AUC-i 0.8817 FMA, 0.8700 MSD, vs 0.8796 / 0.8662 for A+B and
0.8640 / 0.8593 for A); A and A+B (``train_set="A"`` / ``"AB"``; A+B is the best FMA retrieval
row, 0.7314) stay available. The code's ReduceLROnPlateau (x0.2, patience 5, floor 1.6e-7) and
EarlyStopping (patience 20) are ``config.plateau`` (training/plateau.py), checked every
``eval_every`` steps ([choice]: the code's epoch length is not known); [choice] they monitor
``checkpoint.best_metric`` (``auc_l_seen``, max): the code monitors the validation hinge loss,
which the zero-shot evaluator does not compute. ``:runlocal`` turns them off (400 steps).
Metrics (``evaluators/zero_shot.py``): ROC-AUC / mAP, flat hit@k and P@k for
``task.kwargs.top_k`` (1, 5, 10), P/R/F1 at ``task.kwargs.thresholds`` (cosine >= t; the
paper's code sweeps 0.0-0.9: ``--config.task.kwargs.thresholds='(0.0,0.1,0.2,0.3,0.4,0.5,0.6,
0.7,0.8,0.9)'``), and ``acc_i_all``, the top-1 annotation accuracy over
``task.kwargs.accuracy_tags`` (default all tags: paper 11's GTZAN accuracy 0.7310 is
``musicrep eval --workdir W --data-dir GTZAN_SHARDS``).
Word vectors: ``--config.task.kwargs.word_vectors=PATH`` (GloVe / word2vec files, or the
``vectors.txt`` of ``musicrep word2vec``).

``:runlocal``: the embedded corpus at 16 kHz (n_fft 512, hop 256, 64 bands, 64-frame ~1 s
crops, pools of 2, 32 channels), Adam 1e-3 for 400 steps; without a word-vector path, the
vectors of the config ``word2vec:runlocal`` are trained once into ``$MUSICREP_CACHE`` and used
(``task.kwargs.word_vectors_config``; the ``trainer`` runner resolves it before training);
``acc_i_all`` over its 8 genres (one per clip: the GTZAN stand-in).

``:attributes`` (combinable with ``runlocal``: ``:attributes,runlocal``): paper 10's attribute
setup on the embedded corpus: the labels are its 8 genres, each described by instrument counts
over the training clips (``task.kwargs.side_info="attributes"``, 18-d vectors); 6 seen, 2
unseen genres; trained on A (one genre per clip: B is empty).

``:fma``: paper 10's attribute setup on the shards of ``musicrep prepare fma_openmic``
(``data_pipelines/fma_openmic_builder.py``): the FMA genres (157 on the full copy; 125 seen /
32 unseen) described by 40-d OpenMIC instrument vectors (labelled-present and labelled-absent
counts per instrument, ``task.kwargs.attribute_negative_tags``).
"""

from musicrep_jax.configs.common import (data_config, make_runlocal, plateau_stages, sgd_nesterov,
                                         trainer_config)
from musicrep_jax.data_pipelines.synthetic_corpus import GENRES, INSTRUMENTS, MOODS, TEMPO_CLASSES

VARIANTS = ("runlocal", "attributes", "attributes,runlocal", "fma")
# OpenMIC-2018's 20 instruments (data_pipelines/fma_openmic_builder.py's INSTRUMENTS; written here
# so that configs import no TFDS; tests/unit/data_pipelines/test_zero_shot_builders.py compares).
OPENMIC_INSTRUMENTS = ("accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums",
                       "flute", "guitar", "mallet_percussion", "mandolin", "organ", "piano",
                       "saxophone", "synthesizer", "trombone", "trumpet", "ukulele", "violin",
                       "voice")


def get_config(arg=None):
  args = set((arg or "").split(",")) - {""}
  unknown = args - {"runlocal", "attributes", "fma"}
  if unknown or ("fma" in args and len(args) > 1):
    raise ValueError(f"configs/zero_shot.py knows the arguments 'runlocal', 'attributes' "
                     f"(combinable) and 'fma' (alone), not {sorted(args)}")
  c = trainer_config(
      data=data_config("msd", 22050, segments_per_clip=10),
      model_name="zero_shot",
      model_kwargs=dict(num_frames=130, channels=(128, 128, 128, 128, 100)),
      task="zero_shot", batch_size=64, num_train_steps=100_000,
      optimizer=sgd_nesterov(learning_rate=0.001, kernel_l2=1e-5), eval_every=2000)
  # seen_tag_names: the seen tags by name (no draw), e.g. a run's recorded tag_split["seen"];
  # accuracy_tags: the candidates of acc_i_all (empty: every tag with side information);
  # attribute_negative_tags: one "labelled absent" tag per attribute tag (FMA + OpenMIC).
  c.task.kwargs = dict(word_vectors="", seen_fraction=0.8, split_seed=0, train_set="B",
                       negatives=1, margin=0.4, train_tag_names=(), seen_tag_names=(),
                       word_vectors_config="", side_info="word_vectors",
                       attribute_labels=(), attribute_tags=(), attribute_negative_tags=(),
                       attribute_split="train", top_k=(1, 5, 10), thresholds=(0.5,),
                       accuracy_tags=())
  c.checkpoint.best_metric = "auc_l_seen"
  c.checkpoint.best_mode = "max"
  # Keras ReduceLROnPlateau(0.2, patience 5, min_lr 1.6e-7) + EarlyStopping(20), papers.md 11.5:
  # 7 rates 1e-3 ... 3.2e-7, then the 1.6e-7 floor.
  c.plateau = plateau_stages(7, patience=5, reload_best=False, stop_patience=20,
                             min_learning_rate=1.6e-7)
  if "attributes" in args:
    # Paper 10's attribute setup on the embedded corpus: genres described by instruments.
    # One genre per clip: no clip carries a seen and an unseen genre (B is empty), so A.
    c.task.kwargs.update(side_info="attributes", attribute_labels=tuple(GENRES),
                         attribute_tags=tuple(INSTRUMENTS), train_tag_names=tuple(GENRES),
                         train_set="A")
  if "fma" in args:
    c.data.name = "fma_openmic"
    c.task.kwargs.update(
        side_info="attributes",
        attribute_tags=tuple(f"instrument---{n}" for n in OPENMIC_INSTRUMENTS),
        attribute_negative_tags=tuple(f"no_instrument---{n}" for n in OPENMIC_INSTRUMENTS))
  if "runlocal" in args:
    make_runlocal(c, model_kwargs=dict(num_frames=64, n_fft=512, hop_length=256, n_mels=64,
                                       channels=(32, 32, 32, 32, 32),
                                       pool_sizes=(2, 2, 2, 2, 1)),
                  num_train_steps=400, batch_size=32, learning_rate=1e-3)
    # The paper's SGD (lr 0.001 on a summed loss) barely moves in 400 steps (test AUC-l of
    # seen tags 0.51); Adam 1e-3 reaches 0.72 seen / 0.61 unseen on the test split (measured
    # with train_set AB; with B, 300 steps of 2 segments: validation 0.79 seen / 0.88 unseen).
    c.optimizer.name = "adam"
    # The embedded corpus's 24 tags (its shards' own tags, in their order: the same split as
    # the empty default); named so a transfer evaluation on other shards keeps this split.
    if "attributes" not in args:
      c.task.kwargs.train_tag_names = tuple(GENRES + MOODS + INSTRUMENTS + TEMPO_CLASSES)
      c.task.kwargs.word_vectors_config = "word2vec:runlocal"
    c.task.kwargs.accuracy_tags = tuple(GENRES)  # One genre per clip, as GTZAN.
    c.plateau.num_stages = 0  # 400 steps, 2 evaluations: nothing to plateau on.
  return c
