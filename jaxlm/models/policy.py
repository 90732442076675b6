"""Extracted policies, in the two forms evaluation needs; `perturb` is the one extraction rule.

Every offline algorithm extracts a token-level policy softmax(logits + beta * advantage)
(Snell et al. 2022, ILQL, Eq. 6; BC has no advantage, MC returns use Q, ILQL uses Q - V), where
the logits and the advantage may come from different transformers (ILQL's frozen BC policy, its
value trunk and its target trunk). A `Policy` carries it twice:

* `scorer(params, tokens_BxT, mask_BxT) -> (logits_BxTxV, advantage_BxTxV | None)` over whole
  sequences: reranking a fixed action set (`jaxlm.evaluation.make_candidate_scorer`).
* `decoder`, a `JointDecoder`: the same policy one token at a time for `jaxlm.generate`. It runs
  each transformer with its own KV cache (the cache is the tuple of theirs) and combines their
  outputs into the perturbed logits. Beta is data, one value per row (`beta_B` in the params),
  so a single compiled decode loop samples a whole beta sweep: rows = episodes x betas.

Called without a cache on whole sequences, the decoder gives the scorer's logits + beta * adv at
every position; tests/decoding_test.py checks that generate's step logits agree with them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxlm.models import transformer as tfm

# (params, tokens_BxT, mask_BxT) -> (logits_BxTxV, advantage_BxTxV | None) over whole sequences.
Scorer = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array | None]]

# (heads params, one TransformerOutput per model) -> (logits_BxTxV, advantage_BxTxV | None).
Combine = Callable[[Any, tuple[tfm.TransformerOutput, ...]], tuple[jax.Array, jax.Array | None]]


def perturb(logits_BxTxV: jax.Array, adv_BxTxV: jax.Array | None, beta_B: jax.Array,
            adv_clip: jax.Array | float = jnp.inf) -> jax.Array:
  """Logits of the extracted policy, logits + beta * clip(adv, -c, c) (Snell et al. 2022, Eq. 6).

  The one place the rule is written: free-text decoding (`JointDecoder`), candidate reranking
  and evaluation all call it.

  Args:
    logits_BxTxV: the behaviour policy's logits (pi_beta).
    adv_BxTxV: the advantage (ILQL: Q - V; MC: Q), or None (BC: the logits unchanged).
    beta_B: the perturbation strength of each row.
    adv_clip: bound on |adv| (inf = no clip).

  Returns:
    float32 [B, T, V].
  """
  if adv_BxTxV is None:
    return logits_BxTxV
  adv_BxTxV = jnp.clip(adv_BxTxV, -adv_clip, adv_clip)
  return logits_BxTxV + beta_B[:, None, None] * adv_BxTxV


@dataclasses.dataclass(frozen=True)
class JointDecoder:
  """Transformers that read the same tokens, each with its own KV cache, and their combination.

  Hashable (frozen, with static fields), so `jaxlm.generate` compiles its loop once per decoder
  and shape. Its params are a dict:
    models: one params tree per transformer, in the order of `models`;
    heads: whatever `combine` reads (value-head params; None for a plain LM);
    beta_B: float32 [B], the beta of each row;
    adv_clip: float32 scalar, bound on |advantage| (inf = none).

  Attributes:
    models: the transformers (the same module may repeat, e.g. a value trunk and its target).
    combine: static `(params["heads"], outputs) -> (logits, advantage | None)`; Q heads are
      applied to the outputs' hidden states, so at a decode step only that step's are computed.
  """
  models: tuple[tfm.Transformer, ...]
  combine: Combine

  @property
  def cfg(self) -> tfm.TransformerConfig:
    """The first transformer's config (vocabulary and positions; `generate` checks prompts)."""
    return self.models[0].cfg

  def init_cache(self, batch_size: int, max_len: int, dtype=None) -> tuple[tfm.Cache, ...]:
    """One empty KV cache per transformer (see `jaxlm.generate`)."""
    return tuple(tfm.init_cache(m.cfg, batch_size, max_len, dtype) for m in self.models)

  def __call__(self, params, tokens_BxT, mask_BxT, positions_BxT=None, cache=None
               ) -> tfm.TransformerOutput:
    """Perturbed logits (`perturb`), the first transformer's hidden states, the new caches."""
    caches = (None,) * len(self.models) if cache is None else cache
    outs = tuple(m.apply({"params": p}, tokens_BxT, attention_mask_BxT=mask_BxT,
                         positions_BxT=positions_BxT, cache=c)
                 for m, p, c in zip(self.models, params["models"], caches, strict=True))
    logits_BxTxV, adv_BxTxV = self.combine(params["heads"], outs)
    return tfm.TransformerOutput(
        logits=perturb(logits_BxTxV, adv_BxTxV, params["beta_B"], params["adv_clip"]),
        hidden=outs[0].hidden, cache=None if cache is None else tuple(o.cache for o in outs))


def lm_logits(heads: Any, outs: tuple[tfm.TransformerOutput, ...]):
  """`Combine` of a plain LM policy (BC): its logits, no advantage."""
  del heads
  return outs[0].logits, None


@dataclasses.dataclass(frozen=True)
class Policy:
  """An algorithm's extracted policy: what its `train` returns for evaluation.

  Called like its scorer, so code that takes a full-sequence scorer takes a Policy too.

  Attributes:
    scorer: `(params, tokens_BxT, mask_BxT) -> (logits_BxTxV, advantage_BxTxV | None)`.
    decoder: the same policy step by step (`JointDecoder`).
    decoder_params: `trained params -> {"models": ..., "heads": ...}` of the decoder.
  """
  scorer: Scorer
  decoder: JointDecoder
  decoder_params: Callable[[Any], dict[str, Any]]

  def __call__(self, params, tokens_BxT, mask_BxT):
    return self.scorer(params, tokens_BxT, mask_BxT)

  def step_params(self, params, beta_B, adv_clip: float | None = None) -> dict[str, Any]:
    """The decoder's params for rows with betas `beta_B` ([B]) from the trained `params`."""
    return {**self.decoder_params(params), "beta_B": jnp.asarray(beta_B, jnp.float32),
            "adv_clip": jnp.float32(jnp.inf if adv_clip is None else adv_clip)}


def lm_policy(model: tfm.Transformer, logits_fn: Callable) -> Policy:
  """The Policy of a plain LM (BC): `logits_fn(params, tokens, mask)` and the model itself."""
  return Policy(lambda p, t, m: (logits_fn(p, t, m), None), JointDecoder((model,), lm_logits),
                lambda p: {"models": (p,), "heads": None})
