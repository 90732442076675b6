"""Monte-Carlo returns (LMRL-Gym "MC Returns", Abdulhai et al. 2023, Sec. 5).

One transformer carries the policy LM head (trained by BC) and a Q head over the vocabulary
regressed to the discounted return-to-go of each action token. The extracted policy is
softmax(logits_BC + beta * Q): a per-state constant (V) would not change it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax

from jaxlm.algos import bc as bc_lib
from jaxlm.algos import decoding
from jaxlm.algos import offline
from jaxlm.losses import MCOutputs, mc_loss
from jaxlm.models import Transformer
from jaxlm.models.heads import MLPHead
from jaxlm.rl.returns import action_return_stats


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
  """MC returns configuration.

  Attributes:
    bc_weight: weight of the BC term training the shared LM head.
    betas: perturbation strengths evaluated (in one batched pass).
  """
  bc_weight: float = 1.0
  betas: tuple[float, ...] = (0.0, 1.0, 4.0, 16.0)


def train(config: Config, workdir: str, *, resume: bool = False, name: str = "mc"):
  """Trains trunk + LM head + Q head; returns (params, policy, task)."""
  task, batch = offline.task_and_batch(config, workdir)
  mcfg = offline.model_config(config, task)
  model = Transformer(mcfg)
  mean, std = map(float, action_return_stats(batch, gamma=config.gamma))
  head = MLPHead(mcfg.vocab_size, bias_init=mean, scale=max(std, 1e-3))
  _, lm_init, _ = bc_lib.lm_networks(mcfg, offline.pretrained_params(config))

  def init_fn(key):
    k1, k2 = jax.random.split(key)
    hidden = jax.numpy.zeros((1, 1, mcfg.d_model))
    return {"lm": lm_init(k1), "q": head.init(k2, hidden)["params"]}

  outputs = _outputs(model, head)

  def loss_fn(params, batch, rng, *, state):
    del rng, state
    logits, q = outputs(params, batch.tokens, batch.attention_mask)
    return mc_loss(MCOutputs(q_BxTxV=q, logits_BxTxV=logits), batch, gamma=config.gamma,
                   bc_weight=config.bc_weight)

  state = offline.fit(name, config, workdir, init_fn, loss_fn,
                      offline.RandomBatches(batch, config.batch_size, config.seed),
                      resume=resume)
  return state.params, _policy(model, head), task


def _outputs(model: Transformer, head: MLPHead):
  """(params, tokens, mask) -> (LM logits, Q over the vocabulary) at every position."""
  def outputs(params, tokens, mask):
    out = model.apply({"params": params["lm"]}, tokens, attention_mask_BxT=mask)
    return out.logits, head.apply({"params": params["q"]}, out.hidden)
  return outputs


def _policy(model: Transformer, head: MLPHead) -> decoding.Policy:
  """logits + beta * Q; when decoding, Q reads the step's hidden state of the same trunk."""
  combine = lambda q_params, outs: (outs[0].logits,
                                    head.apply({"params": q_params}, outs[0].hidden))
  return decoding.Policy(_outputs(model, head), decoding.JointDecoder((model,), combine),
                         lambda p: {"models": (p["lm"],), "heads": p["q"]})


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False,
                       name: str = "mc") -> dict[str, dict[str, float]]:
  """Trains MC returns; {name: row of the first beta}; the sweep goes to beta_sweep.json."""
  params, policy, task = train(config, workdir, resume=resume, name=name)
  rows = offline.evaluate_scorer(policy, params, task, config, config.betas, name)
  offline.write_json(os.path.join(workdir, name, "beta_sweep.json"), rows)
  results = {name: rows[0]}
  offline.write_json(os.path.join(workdir, name, "results.json"), results)
  return results
