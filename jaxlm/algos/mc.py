"""Monte-Carlo returns (LMRL-Gym "MC Returns", Abdulhai et al. 2023, Sec. 5).

One transformer carries the policy LM head (trained by BC) and a Q head over the vocabulary
regressed to the discounted return-to-go of each action token. The extracted policy is
softmax(logits_BC + beta * Q): a per-state constant (V) would not change it.
"""

from __future__ import annotations

import dataclasses
import os

import jax

from jaxlm import files
from jaxlm import train as train_lib
from jaxlm.algos import offline
from jaxlm.data.iterators import RandomBatches
from jaxlm.losses import MCOutputs, mc_loss
from jaxlm.models import Transformer, lm_networks
from jaxlm.models import policy as policy_lib
from jaxlm.models.heads import MLPHead
from jaxlm.rl.returns import action_return_stats


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
  """MC returns configuration.

  Attributes:
    bc_weight: weight of the BC term training the shared LM head.
    betas: perturbation strengths evaluated (in one batched pass); the first is reported.
  """
  bc_weight: float = 1.0
  betas: tuple[float, ...] = (1.0, 0.0, 4.0, 16.0)


def train(config: Config, data: offline.OfflineData, workdir: str, *, resume: bool = False,
          name: str = "mc"):
  """Trains trunk + LM head + Q head on `data`; returns (params, policy)."""
  mcfg = data.model
  model = Transformer(mcfg)
  mean, std = map(float, action_return_stats(data.batch, gamma=config.gamma))
  head = MLPHead(mcfg.vocab_size, bias_init=mean, scale=max(std, 1e-3))
  _, lm_init, _ = lm_networks(mcfg, data.pretrained)

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

  state, _ = train_lib.fit(os.path.join(workdir, name), config.train, init_fn, loss_fn,
                           RandomBatches(data.batch, config.train.batch_size, config.train.seed),
                           resume=resume, saved_config=config)
  return state.params, _policy(model, head)


def _outputs(model: Transformer, head: MLPHead):
  """(params, tokens, mask) -> (LM logits, Q over the vocabulary) at every position."""
  def outputs(params, tokens, mask):
    out = model.apply({"params": params["lm"]}, tokens, attention_mask_BxT=mask)
    return out.logits, head.apply({"params": params["q"]}, out.hidden)
  return outputs


def _policy(model: Transformer, head: MLPHead) -> policy_lib.Policy:
  """logits + beta * Q; when decoding, Q reads the step's hidden state of the same trunk."""
  combine = lambda q_params, outs: (outs[0].logits,
                                    head.apply({"params": q_params}, outs[0].hidden))
  return policy_lib.Policy(_outputs(model, head), policy_lib.JointDecoder((model,), combine),
                           lambda p: {"models": (p["lm"],), "heads": p["q"]})


def evaluate(config: Config, params, policy: policy_lib.Policy, data: offline.OfflineData,
             workdir: str, name: str = "mc") -> list[dict[str, float]]:
  """The beta sweep of a trained MC policy; written to `workdir/name/beta_sweep.json`."""
  rows = offline.evaluate(policy, params, data.task, config, betas=config.betas, name=name)
  files.write_json(os.path.join(workdir, name, "beta_sweep.json"), rows)
  return rows


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False,
                       name: str = "mc") -> dict[str, dict[str, float]]:
  """Trains MC returns; {name: row of the first beta}; the sweep goes to beta_sweep.json."""
  if resume:
    offline.require_checkpoint(workdir, name)
  data = offline.prepare(config, workdir)
  params, policy = train(config, data, workdir, resume=resume, name=name)
  results = {name: evaluate(config, params, policy, data, workdir, name)[0]}
  files.write_json(os.path.join(workdir, name, "results.json"), results)
  return results
