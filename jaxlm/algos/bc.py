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
  logical-axis boxes of a fresh init so that they are sharded the same way.
  """
  model = Transformer(mcfg)

  def init_fn(key):
    fresh = model.init(key, jnp.zeros((1, min(mcfg.max_len, 8)), jnp.int32))["params"]
    if pretrained is None:
      return fresh
    return jax.tree.map(
        lambda box, w: box.replace_boxed(jnp.asarray(w, box.unbox().dtype))
        if isinstance(box, nn.Partitioned) else jnp.asarray(w, box.dtype), fresh, pretrained,
        is_leaf=lambda x: isinstance(x, nn.Partitioned))

  logits_fn = lambda params, tokens, mask: model.apply({"params": params}, tokens,
                                                       attention_mask_BxT=mask).logits
  return model, init_fn, logits_fn


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
