"""Paper 6 (NIPS 2017 ML4Audio workshop): acoustic scenes of DCASE 2017 Task 1; papers.md 7.

TUT Acoustic Scenes 2017, 15 scenes.

Arguments as in ``samplecnn_speech_commands`` (``basic`` | ``improved``, optionally
``,runlocal``): the same 8-block models on 1-s segments at 22,050 Hz. Every 10-s clip is one
label; training takes random 1-s crops, evaluation averages the softmax of the clip's 10
back-to-back 1-s segments (papers.md 7.2: 10 segments per 10-s clip) and reports clip accuracy.
Prepare one fold with ``musicrep prepare dcase2017 --manual-dir DIR --fold 1 --out OUT``.

The journal code behind paper 6 used DCASE 2017 *Task 4* (17 weakly labelled event classes,
sigmoid outputs, F1 at threshold 0.1; papers.md 7.2); this config is the single-label scene
task (Task 1), with the same input and training recipe. ``:runlocal`` classifies the embedded
corpus's genre from 1-s segments of its 4-s clips (see the Speech Commands config).
"""

from musicrep_jax.configs import samplecnn_speech_commands as speech
from musicrep_jax.configs.common import data_config

EPOCH = 1373  # Fold 1: ~3,160 train clips after the 10% validation x 10 segments / batch 23.
VARIANTS = speech.VARIANTS


def get_config(arg=None):
  variant, runlocal = speech.parse_arg(arg, "configs/samplecnn_dcase2017.py")
  c = speech.paper6_config(data_config("dcase2017", 22050, segments_per_clip=10), EPOCH, variant,
                           runlocal)
  if runlocal:
    c.data.eval_placement = "start"  # 4 back-to-back 1-s segments of each 4-s clip.
  return c
