"""Embedding networks for metric learning, plain or disentangled (papers 4, 9, 13, 14).

``"embedding_net"`` (``EmbeddingNet``) wraps any registered backbone that returns an
``"embedding"`` (by default paper 4's ``mel_dcnn``; papers 13 and 14's configs use the 2-D
``inception`` network of ``models/inception.py``, whose own 256-d L2-normalised output is the
embedding, ``embedding_dim=0``) and adds:

* an optional linear projection to ``embedding_dim`` (0 keeps the backbone's vector: paper 4's
  256-d "deep artist feature");
* conditional-similarity masks (CSN, paper 13, papers.md 14.3): ``num_subspaces`` masks
  ``[num_subspaces, D]``, either **fixed disjoint** binary blocks (the paper's choice: four
  64-d subspaces of a 256-d embedding; block sizes differ by at most one when ``D`` does not
  divide) or **learned** (``relu(w)``, ``w`` initialised N(0.9, 0.7) as in Veit et al.'s CSN;
  the task adds an L1 penalty);
* an optional tag head producing ``logits`` ``[batch, num_outputs]`` (papers.md 15.2):

  ======================  ==============================================================
  head, disentangled      logits of tag ``t`` (of subspace group ``g(t)``)
  ======================  ==============================================================
  ``dense``, no   (c)     ``Dense(num_outputs)(n(f))``; paper 4's basic artist classifier
                          with ``normalize=False``
  ``dense``, yes  (f)     ``Dense_g(n(f o m_g))`` : one sub-dense per subspace. With fixed
                          disjoint masks ``f o m_g`` is block ``g`` of ``f = Dense(D)(x)``,
                          i.e. paper 14's per-category sub-dense layer ``h_s``, L2-normalised,
                          then a dense layer to that category's tags
  ``proxy``, no   (b)     ``cos(f, p_t) / proxy_temperature``, one learned proxy per tag
  ``proxy``, yes  (e)     ``cos(f o m_g, p_t o m_g) / proxy_temperature``
  ======================  ==============================================================

  ``n`` is the L2 normalisation when ``normalize`` (paper 14's "L2 norm" column), else identity.
  With ``head_groups`` empty a disentangled head is impossible; a plain head may also serve a
  single-label classification (paper 4: softmax over artists, the loss is the task's).

Outputs: ``embedding`` float32 ``[batch, D]`` (not normalised: the task normalises per space),
``features`` (the backbone's embedding), ``logits`` when there is a head, and ``masks``
``[num_subspaces, D]`` when ``num_subspaces > 0``. Use :func:`subspace_masks` to rebuild the
masks from the parameters (evaluation).

Choices where papers 13/14 are silent [unknown]: the head is on the projected embedding; the
proxy head has no bias and its temperature is a field (0.1); proxies are normalised (cosine).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.ops.losses import l2_normalize
from musicrep_jax.registry import MODELS

HEADS = ("none", "dense", "proxy")
MASK_MODES = ("fixed", "learned")


def disjoint_masks(num_subspaces: int, dim: int) -> np.ndarray:
  """Fixed disjoint binary masks float32 ``[num_subspaces, dim]``: contiguous blocks (sizes
  ``dim // num_subspaces`` or one more), together covering every dimension once (paper 13)."""
  if not 1 <= num_subspaces <= dim:
    raise ValueError(f"need 1 <= num_subspaces ({num_subspaces}) <= dim ({dim})")
  edges = np.round(np.linspace(0, dim, num_subspaces + 1)).astype(int)
  masks = np.zeros((num_subspaces, dim), np.float32)
  for s in range(num_subspaces):
    masks[s, edges[s]:edges[s + 1]] = 1.0
  return masks


def subspace_masks(params: Mapping[str, Any], num_subspaces: int, dim: int) -> np.ndarray:
  """The masks an ``EmbeddingNet`` with these ``params`` uses -> float32 ``[num_subspaces, dim]``:
  ``relu(mask_weights)`` when learned, else :func:`disjoint_masks`."""
  if "mask_weights" in params:
    return np.maximum(np.asarray(params["mask_weights"], np.float32), 0.0)
  return disjoint_masks(num_subspaces, dim)


def _tupled(value):
  """Config lists -> tuples (hashable module attributes), recursively through dicts."""
  if isinstance(value, (list, tuple)):
    return tuple(_tupled(v) for v in value)
  if isinstance(value, Mapping):
    return {k: _tupled(v) for k, v in value.items()}
  return value


@MODELS.register("embedding_net")
class EmbeddingNet(nn.Module):
  """Backbone -> (projection) -> embedding, CSN masks and an optional tag head (module doc).

  Attributes:
    backbone: a registered model name whose outputs have ``"embedding"`` (``"mel_dcnn"``,
      ``"inception"``, ...).
    backbone_kwargs: its constructor arguments (``sample_rate`` and ``dtype`` are passed on when
      the backbone has them; its own head gets ``num_outputs=1`` and is unused).
    sample_rate: the data's rate (set by the trainer), for spectrogram backbones.
    embedding_dim: projection width ``D``; 0 = the backbone's embedding as it is.
    num_subspaces: CSN masks (0 = none); ``head_groups`` must then have as many groups, or none.
    mask_mode: ``"fixed"`` (disjoint) or ``"learned"``.
    head: ``"none"``, ``"dense"`` or ``"proxy"``.
    disentangled: the head of group ``g``'s tags sees only subspace ``g``.
    normalize: L2-normalise what the head sees.
    num_outputs: head outputs (tags or classes); set by the task.
    head_groups: per subspace, the output indices (tags) it owns; with ``disentangled`` they must
      cover every output exactly once.
    proxy_temperature: divides the cosine logits of the proxy head.
  """

  backbone: str = "mel_dcnn"
  backbone_kwargs: Mapping[str, Any] = None
  sample_rate: int = 22050
  embedding_dim: int = 0
  num_subspaces: int = 0
  mask_mode: str = "fixed"
  head: str = "none"
  disentangled: bool = False
  normalize: bool = True
  num_outputs: int = 0
  head_groups: Sequence[Sequence[int]] = ()
  proxy_temperature: float = 0.1
  dtype: Any = jnp.float32

  def make_backbone(self, **kwargs) -> nn.Module:
    cls = MODELS.get(self.backbone)
    args = dict(_tupled(dict(self.backbone_kwargs or {})))
    fields = getattr(cls, "__dataclass_fields__", {})
    for name, value in (("sample_rate", self.sample_rate), ("dtype", self.dtype),
                        ("num_outputs", 1)):
      if name in fields:
        args.setdefault(name, value)
    return cls(**args, **kwargs)

  @property
  def input_length(self) -> int:
    return self.make_backbone(parent=None).input_length

  def check(self) -> None:
    if self.head not in HEADS:
      raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
    if self.mask_mode not in MASK_MODES:
      raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
    if self.head != "none" and self.num_outputs < 1:
      raise ValueError(f"head {self.head!r} needs num_outputs >= 1")
    if self.disentangled and self.num_subspaces < 1:
      raise ValueError("a disentangled model needs num_subspaces >= 1")
    if self.disentangled and self.head != "none":
      owned = sorted(i for group in self.head_groups for i in group)
      if len(self.head_groups) != self.num_subspaces or owned != list(range(self.num_outputs)):
        raise ValueError(f"a disentangled head needs one head group per subspace "
                         f"({self.num_subspaces}), together covering every output once")

  def _norm(self, x: jnp.ndarray) -> jnp.ndarray:
    return l2_normalize(x) if self.normalize else x

  @nn.compact
  def __call__(self, audio: jnp.ndarray, train: bool = False) -> dict:
    """audio: ``[batch, input_length, 1]`` -> dict of outputs (module docstring)."""
    self.check()
    features = self.make_backbone(name="backbone")(audio, train=train)["embedding"]
    features = features.astype(jnp.float32)
    embedding = features
    if self.embedding_dim:
      embedding = nn.Dense(self.embedding_dim, kernel_init=nn.initializers.xavier_uniform(),
                           name="projection")(features)
    dim = embedding.shape[-1]
    out = {"embedding": embedding, "features": features}
    masks = None
    if self.num_subspaces:
      if self.mask_mode == "learned":
        weights = self.param("mask_weights", lambda key, shape: 0.9 + 0.7 * jax.random.normal(
            key, shape), (self.num_subspaces, dim))
        masks = jax.nn.relu(weights)
      else:
        masks = jnp.asarray(disjoint_masks(self.num_subspaces, dim))
      out["masks"] = masks
    if self.head == "none":
      return out
    if self.head == "proxy":
      proxies = self.param("proxies", nn.initializers.normal(1.0), (self.num_outputs, dim))
    if not self.disentangled:
      if self.head == "dense":
        logits = nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform(),
                          name="head")(self._norm(embedding))
      else:
        logits = jnp.dot(l2_normalize(embedding), l2_normalize(proxies).T)
        logits = logits / self.proxy_temperature
      out["logits"] = logits
      return out
    columns = []
    for g, group in enumerate(self.head_groups):
      sub = embedding * masks[g]
      if self.head == "dense":
        columns.append(nn.Dense(len(group), kernel_init=nn.initializers.xavier_uniform(),
                                name=f"head_{g}")(self._norm(sub)))
      else:
        group_proxies = proxies[np.asarray(group)] * masks[g]
        columns.append(jnp.dot(l2_normalize(sub), l2_normalize(group_proxies).T)
                       / self.proxy_temperature)
    order = np.argsort(np.concatenate([np.asarray(g, np.int64) for g in self.head_groups]))
    out["logits"] = jnp.concatenate(columns, axis=-1)[:, order]
    return out
