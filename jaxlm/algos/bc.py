"""Behaviour cloning and filtered BC on text episodes (LMRL-Gym "BC" and "%BC" baselines).

BC fits the policy LM to the agent's tokens by cross-entropy (Pomerleau 1991); filtered BC does
the same on the best `filter_fraction` of episodes by return (Abdulhai et al. 2023, Sec. 5;
Chen et al. 2021). The extracted policy is the LM itself, so the beta sweep has one point.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm.algos import decoding
from jaxlm.algos import offline
from jaxlm.losses import LMOutputs, bc_loss
from jaxlm.models import Transformer, TransformerConfig


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
  """BC configuration: the shared offline fields (set filter_fraction < 1 for filtered BC)."""


def lm_networks(mcfg: TransformerConfig, pretrained: Any = None):
  """(model, init_fn, logits_fn) of a transformer LM; shared by every algorithm.

  With `pretrained` params (e.g. `offline.pretrained_params`), init_fn returns them, keeping the
  logical-axis boxes of a fresh init so that they are sharded the same way. A pretrained
  `vocab` axis may be shorter than `mcfg.vocab_size` (a tokenizer extended at the end, e.g. a
  policy's character set plus search-trace symbols): its rows keep their ids, the new ids keep
  the fresh initialisation.
  """
  model = Transformer(mcfg)

  def init_fn(key):
    fresh = model.init(key, jnp.zeros((1, min(mcfg.max_len, 8)), jnp.int32))["params"]
    if pretrained is None:
      return fresh
    return jax.tree.map(_load_pretrained, fresh, pretrained,
                        is_leaf=lambda x: isinstance(x, nn.Partitioned))

  logits_fn = lambda params, tokens, mask: model.apply({"params": params}, tokens,
                                                       attention_mask_BxT=mask).logits
  return model, init_fn, logits_fn


def _load_pretrained(fresh: Any, w: Any) -> Any:
  """`w` in the dtype (and logical-axis box) of `fresh`; a shorter `vocab` axis is grown."""
  unbox = lambda x: x.unbox() if isinstance(x, nn.Partitioned) else x
  value = unbox(fresh)
  w = jnp.asarray(unbox(w), value.dtype)
  if w.shape != value.shape:
    names = fresh.names if isinstance(fresh, nn.Partitioned) else ()
    grow = [i for i, (a, b) in enumerate(zip(w.shape, value.shape)) if a != b]
    if (w.ndim != value.ndim or len(grow) != 1 or grow[0] >= len(names)
        or names[grow[0]] != "vocab" or w.shape[grow[0]] > value.shape[grow[0]]):
      raise ValueError(f"pretrained shape {w.shape} does not fit {value.shape} (axes {names});"
                       " only a shorter 'vocab' axis can be grown")
    w = jax.lax.dynamic_update_slice(value, w, (0,) * w.ndim)
  return fresh.replace_boxed(w) if isinstance(fresh, nn.Partitioned) else w


def train(config: Config, workdir: str, *, resume: bool = False, name: str = "bc"
          ) -> tuple[Any, decoding.Policy, offline.Task]:
  """Trains the policy LM; returns (params, policy, task)."""
  task, batch = offline.task_and_batch(config, workdir)
  model, init_fn, logits_fn = lm_networks(offline.model_config(config, task),
                                          offline.pretrained_params(config))

  def loss_fn(params, batch, rng, *, state):
    del rng, state
    return bc_loss(LMOutputs(logits_fn(params, batch.tokens, batch.attention_mask)), batch)

  state = offline.fit(name, config, workdir, init_fn, loss_fn,
                      offline.RandomBatches(batch, config.batch_size, config.seed),
                      resume=resume)
  return state.params, decoding.lm_policy(model, logits_fn), task


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False,
                       name: str = "bc") -> dict[str, dict[str, float]]:
  """Trains BC (or filtered BC), evaluates it in the environment: {name: result row}."""
  params, policy, task = train(config, workdir, resume=resume, name=name)
  results = {name: offline.evaluate_scorer(policy, params, task, config, (0.0,), name)[0]}
  offline.write_json(os.path.join(workdir, name, "results.json"), results)
  return results
