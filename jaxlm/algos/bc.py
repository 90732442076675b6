"""Behaviour cloning and filtered BC on text episodes (LMRL-Gym "BC" and "%BC" baselines).

BC fits the policy LM to the agent's tokens by cross-entropy (Pomerleau 1991); filtered BC does
the same on the best `filter_fraction` of episodes by return (Abdulhai et al. 2023, Sec. 5;
Chen et al. 2021). The extracted policy is the LM itself, so the beta sweep has one point.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax

from jaxlm import files
from jaxlm import train as train_lib
from jaxlm.algos import offline
from jaxlm.data.batch import RLBatch
from jaxlm.data.iterators import RandomBatches
from jaxlm.losses import LMOutputs, bc_loss
from jaxlm.models import lm_networks
from jaxlm.models import policy as policy_lib
from jaxlm.models.transformer import output_matrix


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
  """BC configuration: the shared offline fields (set filter_fraction < 1 for filtered BC)."""


def fused_bc_loss(model: Any, params: Any, batch: RLBatch
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`bc_loss` of `model` (a `Transformer`) on `batch` through the fused output projection +
  cross-entropy (`jaxlm.losses.xent`): no [B, T, V] logits."""
  out = model.apply({"params": params}, batch.tokens, attention_mask_BxT=batch.attention_mask,
                    with_logits=False)
  return bc_loss(LMOutputs(hidden_BxTxD=out.hidden, w_VxD=output_matrix(params, model.cfg)),
                 batch)


def train(config: Config, data: offline.OfflineData, workdir: str, *, resume: bool = False,
          name: str = "bc") -> tuple[Any, policy_lib.Policy]:
  """Trains the policy LM on `data` (checkpoints in `workdir/name`); returns (params, policy)."""
  model, init_fn, logits_fn = lm_networks(data.model, data.pretrained)

  def loss_fn(params, batch, rng, *, state):
    del rng, state
    return fused_bc_loss(model, params, batch)

  state, _ = train_lib.fit(os.path.join(workdir, name), config.train, init_fn, loss_fn,
                           RandomBatches(data.batch, config.train.batch_size, config.train.seed),
                           resume=resume, saved_config=config)
  return state.params, policy_lib.lm_policy(model, logits_fn)


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False,
                       name: str = "bc") -> dict[str, dict[str, float]]:
  """Trains BC (or filtered BC), evaluates it in the environment: {name: result row}."""
  if resume:
    offline.require_checkpoint(workdir, name)
  data = offline.prepare(config, workdir)
  params, policy = train(config, data, workdir, resume=resume, name=name)
  results = {name: offline.evaluate(policy, params, data.task, config, betas=(0.0,),
                                    name=name)[0]}
  files.write_json(os.path.join(workdir, name, "results.json"), results)
  return results
