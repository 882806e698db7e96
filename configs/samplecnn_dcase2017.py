"""Paper 6 (NIPS 2017 ML4Audio workshop): DCASE 2017 Task 4 weak event tagging; papers.md 7.

Default: the journal code's acoustic task (papers.md 7.2), **DCASE 2017 Task 4**, 17 weakly
labelled sound-event classes, multi-label: sigmoid outputs and binary cross-entropy (task
``tagging``), 1-s segments (22,050 samples at 22,050 Hz, 8 blocks) and 10 back-to-back 1-s
segments per 10-s clip for evaluation (``eval_placement="start"``); a clip's score is the mean of
its segments' sigmoid outputs, reported as macro ROC-AUC / PR-AUC (evaluator ``tagging``) and as
the samples-averaged F1, precision and recall of ``score > 0.1`` (evaluator ``tagging_f1``; the
threshold is the tagging task's ``f1_threshold`` where it has that field, otherwise 0.1,
``evaluators.tagging.F1_THRESHOLD``). Split 46,042 / 5,618 / 1,103 clips; prepare it with
``musicrep prepare dcase2017_task4 --manual-dir DIR --out OUT``. An epoch is counted as the
journal code counts it: ``ceil(46,042 x 10 segments / batch 23)`` = 20,019 steps.

Arguments as in ``samplecnn_speech_commands`` (``basic`` | ``improved``, optionally
``,runlocal``), plus ``task1``: DCASE 2017 **Task 1** (TUT Acoustic Scenes 2017, 15 scenes,
single label: softmax classification, clip accuracy), the task the NIPS paper's "acoustic scene"
wording suggests; prepare one fold with ``musicrep prepare dcase2017 --manual-dir DIR --fold 1
--out OUT``. Training as paper 5 (SGD Nesterov 0.01, Keras decay 1e-6, batch 23, 5 stages x
0.2, each early-stopped on the validation loss with patience 2 and restarted from the best
checkpoint: ``config.plateau``, evaluated every epoch; the run capped at 100 epochs).

``:runlocal`` runs the same code path on the embedded corpus (1-s segments of its 4-s clips at
16 kHz, 4 back-to-back segments per clip for evaluation): for Task 4 multi-label tagging of its
24 tags with both evaluators; with ``task1`` the single-label genre classification of the Speech
Commands config.

Training visits each (clip, 1-s segment) of the evaluation grid once per epoch
(``data.train_segments="grid"``, an epoch = clips x 10, ``EPOCH`` steps); ``random`` draws one
random 1-s crop per clip visit instead.
"""

from musicrep_jax.configs import samplecnn_speech_commands as speech
from musicrep_jax.configs.common import data_config

CONFIG_FILE = "configs/samplecnn_dcase2017.py"
TASKS = ("task4", "task1")
# Steps per epoch as the journal code counts them: ceil(clips x 10 segments / batch 23)
# (tae-jun/sampleaudio train.py, steps_per_epoch).
EPOCH = {"task4": 20019,  # 46,042 training clips.
         "task1": 1373}  # Fold 1: ~3,160 train clips after the 10% validation.
DATA_NAMES = {"task4": "dcase2017_task4", "task1": "dcase2017"}
VARIANTS = ("runlocal", "basic", "improved", "improved,runlocal", "task1", "improved,task1",
            "task1,runlocal")


def parse_arg(arg) -> tuple[str, str, bool]:
  """``"improved,task1,runlocal"`` -> ``("task1", "improved", True)``; defaults: Task 4, basic."""
  tokens = [t for t in (arg or "").split(",") if t]
  tasks = [t for t in tokens if t in TASKS]
  if len(tasks) > 1:
    raise ValueError(f"{CONFIG_FILE} takes one of task4 (the default) or task1; got {arg!r}")
  variant, runlocal = speech.parse_arg(",".join(t for t in tokens if t not in TASKS), CONFIG_FILE)
  return (tasks or ["task4"])[0], variant, runlocal


def get_config(arg=None):
  task, variant, runlocal = parse_arg(arg)
  c = speech.paper6_config(data_config(DATA_NAMES[task], 22050, segments_per_clip=10,
                                       train_segments="grid"),
                           EPOCH[task], variant, runlocal)
  if task == "task4":  # Multi-label: sigmoid BCE, ROC-AUC / PR-AUC and F1 at 0.1.
    c.task.name = "tagging"
    c.task.kwargs = {"f1_threshold": 0.1}
    c.evals = ("tagging", "tagging_f1")
  if runlocal:
    c.data.eval_placement = "start"  # 4 back-to-back 1-s segments of each 4-s clip.
  return c
