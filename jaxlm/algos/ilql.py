"""Implicit Language Q-Learning (Snell et al. 2022) on text environments.

The loss is `jaxlm.losses.ilql_loss`; this module builds the networks of the three published
variants (`jaxlm.losses.ILQL_VARIANTS`) and runs the experiment:

* "lmrl_gym" (default; Abdulhai et al. 2023): a value transformer with Q1, Q2 and V heads, a
  Polyak target copy of it, and a frozen BC policy trained first (pi_beta).
* "trlx": one transformer whose LM head is the policy (trained by the BC term) and whose hidden
  states feed the Q/V heads; target Q = Polyak copies of the heads on the online features.
* "original": value transformer + target copy, and a separate policy LM trained jointly by BC.

In every variant the state keeps a Polyak copy of all trained parameters (`target_params`);
variants that only need target heads ignore the copied trunk.

Policy extraction (Eq. 6): softmax(logits_pi_beta + beta * (Q - V)) with Q the minimum of the two
(target or online) heads, optionally with the advantage clipped; every beta of `betas` is
evaluated in one batched rollout. `train_and_evaluate` also trains the baselines named in
`compare` on the same data and writes the comparison table, results.json and plots.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp

from jaxlm import files
from jaxlm import plots
from jaxlm import train as train_lib
from jaxlm.config import TrainConfig
from jaxlm.algos import bc as bc_lib
from jaxlm.algos import mc as mc_lib
from jaxlm.algos import offline
from jaxlm.data.iterators import RandomBatches
from jaxlm.losses import ILQL_VARIANTS, ilql_loss
from jaxlm.models import Transformer, lm_networks
from jaxlm.models import policy as policy_lib
from jaxlm.models.heads import ILQLHeads
from jaxlm.rl.returns import action_return_stats, decision_view


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
  """ILQL configuration (plus the shared offline fields).

  Attributes:
    variant: "lmrl_gym", "trlx" or "original" (module docstring).
    tau: expectile of the V regression (0.5 = SARSA-like mean, -> 1 = max).
    cql_weight: weight of the CQL term; cql_temperature its temperature.
    train: the ILQL (and MC baseline) training run; 5000 updates carry the goal's value to the
      far Maze cells (experiments/configs/ilql.py).
    polyak: target update rate alpha (target <- (1 - alpha) target + alpha online; fast for
      short CPU runs).
    bc_weight: BC/AWAC term weight for variants that train a policy (None = variant default).
    betas: perturbation strengths evaluated in one pass; the first is reported as "ilql".
    policy_q: "target" or "online" Q heads for decoding.
    adv_clip: clip |Q - V| at decoding (None = no clip).
    compare: baselines trained on the same data for the results table
      ("bc", "filtered_bc", "mc").
    filter_fraction_bc: episodes kept by the filtered BC baseline.
    bc_steps: updates of the BC policy (lmrl_gym's pi_beta and the BC baselines).
  """
  train: TrainConfig = TrainConfig(batch_size=32, num_steps=5000)
  variant: str = "lmrl_gym"
  tau: float = 0.7
  cql_weight: float = 0.1
  cql_temperature: float = 1.0
  polyak: float = 0.05
  bc_weight: float | None = None
  betas: tuple[float, ...] = (2.0, 0.0, 8.0, 32.0)
  policy_q: str = "target"
  adv_clip: float | None = None
  compare: tuple[str, ...] = ("bc", "filtered_bc", "mc")
  filter_fraction_bc: float = 0.1
  bc_steps: int = 400

  def __post_init__(self):
    super().__post_init__()
    if self.variant not in ILQL_VARIANTS:
      raise ValueError(f"variant={self.variant!r}; expected one of {sorted(ILQL_VARIANTS)}")
    if self.policy_q not in ("target", "online"):
      raise ValueError(f"policy_q={self.policy_q!r}; expected 'target' or 'online'")
    unknown = sorted(set(self.compare) - {"bc", "filtered_bc", "mc"})
    if unknown:
      raise ValueError(f"compare has unknown baselines {unknown}")
    if not 0.5 <= self.tau < 1:
      raise ValueError(f"tau={self.tau} must be in [0.5, 1)")


def _networks(config: Config, mcfg, init_value: float, value_scale: float, pretrained=None):
  """(init_fn, outputs_fn, scorer, bootstrap_v) for the configured variant."""
  variant = ILQL_VARIANTS[config.variant]
  model, heads = Transformer(mcfg), ILQLHeads(mcfg.vocab_size, init_value=init_value,
                                                value_scale=value_scale)
  _, lm_init, lm_logits = lm_networks(mcfg, pretrained)

  def init_fn(key):
    k_trunk, k_heads, k_policy = jax.random.split(key, 3)
    params = {"trunk": lm_init(k_trunk),
              "heads": heads.init(k_heads, jnp.zeros((1, 1, mcfg.d_model)))["params"]}
    if variant.policy == "joint":
      params["policy"] = lm_init(k_policy)
    return params

  def forward(params, tokens, mask):
    out = model.apply({"params": params["trunk"]}, tokens, attention_mask_BxT=mask)
    return out, heads.apply({"params": params["heads"]}, out.hidden)

  def outputs(params, target, tokens, mask):
    out, h = forward(params, tokens, mask)
    if variant.target_trunk:
      _, th = forward(target, tokens, mask)
    else:
      th = heads.apply({"params": target["heads"]}, jax.lax.stop_gradient(out.hidden))
    logits = {"shared": out.logits, "frozen": None,
              "joint": lm_logits(params.get("policy"), tokens, mask)
                       if variant.policy == "joint" else None}[variant.policy]
    return h.replace(target_q1_BxTxV=th.q1_BxTxV, target_q2_BxTxV=th.q2_BxTxV,
                     logits_BxTxV=logits)

  def scorer(bundle, tokens, mask):
    params, target, policy = bundle
    o = outputs(params, target, tokens, mask)
    q1, q2 = ((o.target_q1_BxTxV, o.target_q2_BxTxV) if config.policy_q == "target"
              else (o.q1_BxTxV, o.q2_BxTxV))
    logits = o.logits_BxTxV if policy is None else lm_logits(policy, tokens, mask)
    return logits, jnp.minimum(q1, q2) - o.v_BxT[..., None]

  def bootstrap_v(params, successors):
    """V (no gradient) of each successor window at its first trained action (jaxlm.data)."""
    _, h = forward(params, successors.tokens, successors.attention_mask)
    first_B = jnp.argmax(decision_view(successors).trains > 0, axis=-1)
    return jax.lax.stop_gradient(jnp.take_along_axis(h.v_BxT, first_B[:, None], 1)[:, 0])

  return init_fn, outputs, scorer, bootstrap_v


def _decoder(config: Config, mcfg, init_value: float, value_scale: float
             ) -> tuple[policy_lib.JointDecoder, Any]:
  """The extracted policy of `_networks`'s scorer, step by step: (decoder, decoder_params).

  logits_pi_beta + beta * (min(Q1, Q2) - V) (Snell et al. 2022, Eq. 6) with the configured
  Q heads. Transformers run: the policy LM unless it is the value trunk's own LM head ("trlx"),
  the value trunk, and its target copy when target Q heads read it ("lmrl_gym", "original").
  Takes the same head settings as `_networks`; `decoder_params` maps the bundle `train` returns.
  """
  variant = ILQL_VARIANTS[config.variant]
  model, heads = Transformer(mcfg), ILQLHeads(mcfg.vocab_size, init_value=init_value,
                                                value_scale=value_scale)
  own_policy = variant.policy != "shared"
  target_trunk = variant.target_trunk and config.policy_q == "target"

  def combine(head_params, outs):
    policy_out, value_out = outs[0], outs[int(own_policy)]
    h = heads.apply({"params": head_params["online"]}, value_out.hidden)
    q = h if config.policy_q == "online" else heads.apply({"params": head_params["target"]},
                                                         outs[-1].hidden)
    return policy_out.logits, jnp.minimum(q.q1_BxTxV, q.q2_BxTxV) - h.v_BxT[..., None]

  def decoder_params(bundle):
    params, target, policy = bundle
    models = (({"frozen": policy, "joint": params.get("policy")}[variant.policy],)
              if own_policy else ()) + (params["trunk"],)
    models += (target["trunk"],) if target_trunk else ()
    return {"models": models, "heads": {"online": params["heads"], "target": target["heads"]}}

  n = int(own_policy) + 1 + int(target_trunk)
  return policy_lib.JointDecoder((model,) * n, combine), decoder_params


def train(config: Config, data: offline.OfflineData, workdir: str, *, policy_params: Any = None,
          resume: bool = False, name: str = "ilql"):
  """Trains the ILQL networks on `data`; returns (bundle for the scorer, policy).

  The bundle is (params, target params, frozen policy params or None).
  """
  variant = ILQL_VARIANTS[config.variant]
  if (variant.policy == "frozen") != (policy_params is not None):
    raise ValueError(f"variant {config.variant!r} "
                     f"{'needs' if variant.policy == 'frozen' else 'takes no'} policy_params")
  mean, std = map(float, action_return_stats(data.batch, gamma=config.gamma))
  mcfg, value_scale = data.model, max(std, 1e-3)
  init_fn, outputs, scorer, bootstrap_v = _networks(config, mcfg, mean, value_scale,
                                                    data.pretrained)
  bc_weight = variant.bc_weight if config.bc_weight is None else config.bc_weight

  def loss_fn(params, windows, rng, *, state):
    del rng
    batch, successors = windows
    return ilql_loss(outputs(params, state.target_params, batch.tokens, batch.attention_mask),
                     batch, gamma=config.gamma, tau=config.tau, cql_weight=config.cql_weight,
                     cql_temperature=config.cql_temperature, bc_weight=bc_weight,
                     bootstrap_v_B=bootstrap_v(params, successors))

  state, _ = train_lib.fit(os.path.join(workdir, name), config.train, init_fn, loss_fn,
                           RandomBatches(data.batch, config.train.batch_size, config.train.seed,
                                         with_next=True),
                           resume=resume, target_update=config.polyak, saved_config=config)
  policy = policy_lib.Policy(scorer, *_decoder(config, mcfg, mean, value_scale))
  return (state.params, state.target_params, policy_params), policy


def baseline_configs(config: Config) -> dict[str, offline.OfflineConfig]:
  """The configs of the baselines trained beside ILQL on the same data ("bc", "filtered_bc",
  "mc"): the shared offline fields of `config`, `bc_steps` updates for BC and filtered BC (the
  best `filter_fraction_bc` of episodes), ILQL's updates and betas for MC."""
  shared = offline.shared_fields(config)
  bc = bc_lib.Config(**{**shared, "train": dataclasses.replace(config.train,
                                                               num_steps=config.bc_steps)})
  filtered = dataclasses.replace(bc, filter_fraction=config.filter_fraction_bc)
  return {"bc": bc, "filtered_bc": filtered, "mc": mc_lib.Config(**shared, betas=config.betas)}


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False
                       ) -> dict[str, Any]:
  """Trains the baselines in `config.compare` and ILQL on the same data; evaluates all.

  Writes `workdir/results.json` ({algo: {return, normalized, episodes, ...}}), the beta sweep
  (`beta_sweep.json`, `beta_sweep.png`) and per-run learning curves (`<algo>/learning_curve.png`).
  """
  if resume:
    offline.require_checkpoint(workdir, "bc", "filtered_bc", "mc", "ilql")
  data = offline.prepare(config, workdir)
  baselines = baseline_configs(config)
  results, sweeps = {}, {}
  policy = None
  if "bc" in config.compare or ILQL_VARIANTS[config.variant].policy == "frozen":
    policy, bc_policy = bc_lib.train(baselines["bc"], data, workdir, resume=resume, name="bc")
    if "bc" in config.compare:
      results["bc"] = offline.evaluate(bc_policy, policy, data.task, config, betas=(0.0,),
                                       name="bc")[0]
  if "filtered_bc" in config.compare:
    fbc = baselines["filtered_bc"]
    fdata = dataclasses.replace(data, batch=offline.windows(fbc, data.task, workdir))
    params, fbc_policy = bc_lib.train(fbc, fdata, workdir, resume=resume, name="filtered_bc")
    results["filtered_bc"] = offline.evaluate(fbc_policy, params, data.task, fbc,
                                              betas=(0.0,), name="filtered_bc")[0]
    files.write_json(os.path.join(workdir, "filtered_bc", "results.json"),
                     {"filtered_bc": results["filtered_bc"]})
  if "mc" in config.compare:
    mc_config = baselines["mc"]
    params, mc_policy = mc_lib.train(mc_config, data, workdir, resume=resume)
    sweeps["mc"] = mc_lib.evaluate(mc_config, params, mc_policy, data, workdir)
    results["mc"] = sweeps["mc"][0]
  bundle, ilql_policy = train(config, data, workdir, policy_params=policy, resume=resume)
  rows = offline.evaluate(ilql_policy, bundle, data.task, config, betas=config.betas,
                          name="ilql", adv_clip=config.adv_clip)
  results["ilql"], sweeps["ilql"] = rows[0], rows
  files.write_json(os.path.join(workdir, "results.json"), results)
  files.write_json(os.path.join(workdir, "beta_sweep.json"), sweeps)
  if jax.process_index() == 0:
    plots.plot_beta_sweep(sweeps, os.path.join(workdir, "beta_sweep.png"), data.task.name)
    plots.plot_learning_curves(workdir, list(results), os.path.join(workdir,
                                                                    "learning_curves.png"))
  return results
