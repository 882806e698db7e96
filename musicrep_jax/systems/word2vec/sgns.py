"""Skip-gram with negative sampling (SGNS) in JAX: the musical word embedding's trainer
(papers.md 13; Mikolov et al. 2013, as the word2vec C tool and gensim implement it).

One step takes ``batch_size`` consecutive centre positions of the epoch's subsampled text
(``vocab.subsample``), so an epoch visits every kept token once, in order, like the C tool.
For centre ``c`` at position ``p``:

* contexts: the tokens at ``p +- 1..r`` with ``r ~ U{1..window}`` drawn per centre (the C
  tool's reduced window), inside the same sentence;
* ``negatives`` noise words ``n_k ~ unigram^0.75`` drawn per centre and shared by its context
  pairs (each shared negative term is weighted by the number of the centre's context pairs,
  leaving out pairs whose context word is that negative, so the expected loss is the C tool's
  per-pair one; sharing saves ``2 * window`` times the noise gathers);
* loss: ``sum_pairs [softplus(-v_c . u_o) + sum_k softplus(v_c . u_nk)]`` (the negative log
  likelihood of SGNS); input vectors ``v`` start uniform in ``+-0.5 / dim``, output vectors
  ``u`` at zero;
* update: sparse SGD on the gathered rows only (``table.at[ids].add(-lr * grad)``), the
  learning rate decaying linearly from ``learning_rate`` to ``learning_rate * 1e-4`` over the
  run, as in the C tool. The C tool updates one pair at a time; a batch meets a frequent word
  many times and adds up its gradients, which diverges when batches are large for the
  learning rate (4096 centres at lr 0.025 on the planted text of the tests; 1024 is fine).
  Averaging a row's repeated gradients instead was tried and is worse: frequent words then
  barely act as negatives and the vectors collapse onto one direction.

The step is one ``jax.jit`` with donated tables; centre positions are generated on device and
sharded over the mesh's batch axes (the tables are replicated; XLA sums the sparse updates
across devices). No host sync per step: the loss is accumulated on device and read per epoch.
Paper 12's own hyper-parameters are [unknown]; the defaults are word2vec's (dim 100 here,
window 5, 5 negatives, sample 1e-3, min_count 5, lr 0.025, 5 epochs).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.training import mesh as mesh_lib
from musicrep_jax.errors import UserError
from musicrep_jax.systems.word2vec import vocab as vocab_lib


@dataclasses.dataclass(frozen=True)
class SkipGramConfig:
  dim: int = 100
  window: int = 5
  negatives: int = 5
  min_count: int = 5
  max_vocab: int = 0           # 0 = no cap
  sample: float = 1e-3
  epochs: int = 5
  batch_size: int = 1024       # centre positions per step (a multiple of the device count)
  learning_rate: float = 0.025
  min_learning_rate_ratio: float = 1e-4
  seed: int = 0

  def check(self) -> None:
    for name in ("dim", "window", "negatives", "min_count", "epochs", "batch_size"):
      if getattr(self, name) < 1:
        raise UserError(f"word2vec {name} must be >= 1, got {getattr(self, name)}.")
    if self.learning_rate <= 0 or self.sample < 0:
      raise UserError("word2vec learning_rate must be > 0 and sample >= 0.")


@dataclasses.dataclass(frozen=True)
class WordEmbedding:
  """A trained embedding: ``vocab`` and its input vectors float32 ``[vocab, dim]``."""

  vocab: vocab_lib.Vocab
  vectors: np.ndarray
  stats: dict


def _init_tables(key, vocab_size: int, dim: int) -> dict:
  bound = 0.5 / dim
  return {"in": jax.random.uniform(key, (vocab_size, dim), jnp.float32, -bound, bound),
          "out": jnp.zeros((vocab_size, dim), jnp.float32)}


def make_train_step(cfg: SkipGramConfig, noise_cdf: np.ndarray, text_length: int, mesh):
  """``step(tables, tokens, sentence, n_valid, start, lr, step_index, loss_sum) -> (tables,
  loss_sum)``, jitted: one batch of ``cfg.batch_size`` centres from ``start`` (module doc).

  Shapes: tables ``{"in", "out"}`` float32 ``[vocab, dim]``; ``tokens``/``sentence`` int32
  ``[text_length]`` (the epoch's subsampled text, padded); ``n_valid`` its real length;
  ``start``, ``step_index`` int32 scalars; ``lr``, ``loss_sum`` float32 scalars.
  """
  b, w, k = cfg.batch_size, cfg.window, cfg.negatives
  offsets = jnp.asarray([o for o in range(-w, w + 1) if o != 0], jnp.int32)  # [2W]
  cdf = jnp.asarray(noise_cdf)
  vocab_size = int(noise_cdf.shape[0])
  base_key = jax.random.key(cfg.seed)
  batch_sharding = mesh_lib.batch_sharding(mesh)

  def pair_loss(v_center, u_context, u_negative, context_weight, negative_weight):
    s_pos = jnp.einsum("bd,bcd->bc", v_center, u_context)
    s_neg = jnp.einsum("bd,bkd->bk", v_center, u_negative)
    return (jnp.sum(context_weight * jax.nn.softplus(-s_pos))
            + jnp.sum(negative_weight * jax.nn.softplus(s_neg)))

  def step(tables, tokens, sentence, n_valid, start, lr, step_index, loss_sum):
    key = jax.random.fold_in(base_key, step_index)
    k_window, k_noise = jax.random.split(key)
    pos = jax.lax.with_sharding_constraint(start + jnp.arange(b, dtype=jnp.int32),
                                           batch_sharding)
    valid = pos < n_valid
    pos = jnp.minimum(pos, text_length - 1)
    center = tokens[pos]                                                  # [B]
    ctx_pos = pos[:, None] + offsets[None, :]                             # [B, 2W]
    ctx_pos_c = jnp.clip(ctx_pos, 0, text_length - 1)
    reach = jax.random.randint(k_window, (b,), 1, w + 1)
    ctx_mask = (valid[:, None] & (ctx_pos >= 0) & (ctx_pos < n_valid)
                & (jnp.abs(offsets)[None, :] <= reach[:, None])
                & (sentence[ctx_pos_c] == sentence[pos][:, None]))
    context = tokens[ctx_pos_c]                                           # [B, 2W]
    noise = jnp.searchsorted(cdf, jax.random.uniform(k_noise, (b, k)), side="right")
    noise = jnp.minimum(noise, vocab_size - 1).astype(jnp.int32)         # [B, K]
    ctx_w = ctx_mask.astype(jnp.float32)
    # Shared negative k counts once per context pair whose word is not n_k.
    neg_w = jnp.einsum("bc,bck->bk", ctx_w,
                       (context[:, :, None] != noise[:, None, :]).astype(jnp.float32))
    v_center, u_context, u_noise = tables["in"][center], tables["out"][context], \
        tables["out"][noise]
    loss, (g_in, g_ctx, g_noise) = jax.value_and_grad(pair_loss, argnums=(0, 1, 2))(
        v_center, u_context, u_noise, ctx_w, neg_w)
    new_in = tables["in"].at[center].add(-lr * g_in)
    new_out = tables["out"].at[context].add(-lr * g_ctx).at[noise].add(-lr * g_noise)
    return {"in": new_in, "out": new_out}, loss_sum + loss

  replicated = mesh_lib.replicated(mesh)
  return jax.jit(step, in_shardings=(replicated,) * 8, out_shardings=(replicated, replicated),
                 donate_argnums=(0, 7))


def _padded(array: np.ndarray, length: int) -> np.ndarray:
  out = np.full(length, -1, np.int32)
  out[:len(array)] = array
  return out


def train_skipgram(sentences: Sequence[Sequence[str]], cfg: SkipGramConfig = SkipGramConfig(),
                   mesh=None, progress: bool = True,
                   vocab: Optional[vocab_lib.Vocab] = None) -> WordEmbedding:
  """Builds the vocabulary (unless given), then trains SGNS for ``cfg.epochs`` epochs.

  ``stats``: ``words`` (raw in-vocabulary tokens per epoch), ``words_per_s`` (raw words x
  epochs / training seconds, compilation included), ``compile_s``, ``train_s``,
  ``epoch_loss`` (mean loss per context pair, per epoch), ``vocab_size``, ``compilations``.
  """
  cfg.check()
  mesh = mesh_lib.make_mesh() if mesh is None else mesh
  mesh_lib.check_batch_size(cfg.batch_size, mesh)
  vocab = vocab or vocab_lib.build_vocab(sentences, cfg.min_count, cfg.max_vocab or None)
  text = vocab_lib.encode_sentences(vocab, sentences)
  n_words = len(text)
  if n_words < 2:
    raise UserError("The text has fewer than two in-vocabulary words.")
  keep = vocab_lib.keep_probabilities(vocab.counts, cfg.sample)
  expected_kept = float(np.sum(vocab.counts * keep))
  total_steps = max(1, cfg.epochs * math.ceil(expected_kept / cfg.batch_size))
  step_fn = make_train_step(cfg, vocab_lib.noise_cdf(vocab.counts), n_words, mesh)
  replicated = mesh_lib.replicated(mesh)
  tables = jax.device_put(_init_tables(jax.random.key(cfg.seed), len(vocab), cfg.dim),
                          replicated)
  rng = np.random.default_rng([cfg.seed, 1])
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  bar = tqdm(total=total_steps, unit="step", desc="word2vec", disable=not progress,
             dynamic_ncols=True)
  global_step, epoch_loss, compile_s = 0, [], 0.0
  t_start = time.perf_counter()
  for _ in range(cfg.epochs):
    kept = vocab_lib.subsample(text, keep, rng)
    tokens = jax.device_put(_padded(kept.tokens, n_words), replicated)
    sentence = jax.device_put(_padded(kept.sentence, n_words), replicated)
    loss_sum = jax.device_put(jnp.zeros((), jnp.float32), replicated)
    n_valid = np.int32(len(kept))
    for start in range(0, len(kept), cfg.batch_size):
      frac = min(global_step / total_steps, 1.0)
      lr = np.float32(cfg.learning_rate * max(1.0 - frac, cfg.min_learning_rate_ratio))
      t0 = time.perf_counter()
      tables, loss_sum = step_fn(tables, tokens, sentence, n_valid, np.int32(start), lr,
                                 np.int32(global_step), loss_sum)
      if global_step == 0:
        jax.block_until_ready(loss_sum)
        compile_s = time.perf_counter() - t0
      global_step += 1
      bar.update(1)
    pairs = max(len(kept), 1) * (cfg.window + 1)  # Expected context pairs per centre: W + 1.
    epoch_loss.append(float(loss_sum) / pairs)     # The epoch's one host sync.
    bar.set_postfix(loss=f"{epoch_loss[-1]:.3f}")
  vectors = np.asarray(jax.device_get(tables["in"]))
  train_s = time.perf_counter() - t_start
  bar.close()
  stats = {"words": n_words, "epochs": cfg.epochs, "steps": global_step, "train_s": train_s,
           "compile_s": compile_s, "words_per_s": n_words * cfg.epochs / train_s,
           "epoch_loss": epoch_loss, "vocab_size": len(vocab),
           "compilations": int(step_fn._cache_size())}  # pylint: disable=protected-access
  return WordEmbedding(vocab=vocab, vectors=vectors, stats=stats)
