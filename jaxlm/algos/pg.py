"""Online policy-gradient RL on prompts with verifiable rewards: PPO, GRPO, Dr. GRPO, RLOO, DAPO.

One algorithm, its estimator picked by the config (verl's `adv_estimator`):
  "grpo"     group-normalised outcome advantages (Shao et al. 2024, Sec. 4.1.2);
  "dr_grpo"  group-centred, no std division (Liu et al. 2025); use aggregation
             "seq_sum_constant" for the whole Dr. GRPO recipe;
  "rloo"     leave-one-out baseline (Ahmadian et al. 2024);
  "gae"      PPO with a critic (Schulman et al. 2017; GAE, Schulman et al. 2016): a value head
             on the policy trunk ("head") or a separate value transformer ("separate").
DAPO (Yu et al. 2025) is "grpo" with clip_high > clip_low (clip-higher), aggregation
"token_mean", and dynamic sampling: oversample > 1 draws more prompts and keeps the groups
whose rewards vary, drop_zero_variance masks any zero-variance group left (its share is logged).

Multi-turn text games (Maze, Wordle) train through `jaxlm.algos.pg_episodes` (per-turn rows,
"gae"), orchestrated threads through `jaxlm.algos.pg_threads` (APR, e3): each passes its own
rollouts to `train`.

Each `fit` step is one rollout batch: `Rollouts` samples G completions for each of P prompts
from the current policy, scores them (task reward), recomputes their log-probs with the
trainer's forward (the behaviour log-probs; the sampler's own are kept for the mismatch
metric), the reference log-probs (a frozen copy of the initial policy in `TrainState.extra`,
only when kl_coef > 0), values and advantages; then `epochs` x `minibatches` clipped updates
(`jaxlm.train.make_train_step`). The loss normaliser of each update is computed over its whole
minibatch before micro-batching (`prepare_batch`), so the gradient does not change with
`train.accum_steps` or the mesh. Resume is bit-identical: the rollout of step i is seeded by
(train.seed, i) and i is the checkpointed data position.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Literal, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import files
from jaxlm import generation
from jaxlm import metrics as metrics_lib
from jaxlm import plots
from jaxlm import train as train_lib
from jaxlm.config import TrainConfig
from jaxlm.data.batch import RLBatch
from jaxlm.data.iterators import IndexedBatches
from jaxlm.envs.base import PromptTask
from jaxlm.envs.base import mean_confidence_interval
from jaxlm.losses import pg as pg_losses
from jaxlm.losses import xent
from jaxlm.losses.lm import masked_mean
from jaxlm.models import TransformerConfig, lm_networks
from jaxlm.models.heads import MLPHead
from jaxlm.models.transformer import output_matrix
from jaxlm.rl import advantages as adv_lib
from jaxlm.rl import episodes as episodes_lib
from jaxlm.rl import rollout as rollout_lib
from jaxlm.rl import selection
from jaxlm.rl.returns import decision_view

ESTIMATORS = ("grpo", "dr_grpo", "rloo", "gae")
CRITICS = ("none", "head", "separate")


@dataclasses.dataclass(frozen=True)
class Config:
  """Online policy-gradient RL.

  Attributes:
    model: the policy transformer.
    train: the run; `num_steps` counts rollout batches, `batch_size` is rows per rollout
      (P prompts x group_size), `seed` seeds init, prompts and sampling.
    group_size: G completions per prompt.
    prompt_order: "uniform" draws each step's P prompts with replacement; "epochs" walks
      through seeded shuffles of the prompt set (each prompt once per pass, as TRL's sampler).
    sampling: how completions are drawn (`jaxlm.rl.rollout.Sampling`; the task sets stop and
      pad ids).
    estimator: one of ESTIMATORS (module docstring).
    std_ddof: ddof of the group std of "grpo" (1: the torch.std the anchors use).
    advantage_mode: "full" | "positive_only" | "negative_only" (e3's negative-gradient
      ablation; `jaxlm.rl.advantages.advantage_mode`).
    drop_zero_variance: mask out groups whose rewards are all equal (DAPO dynamic sampling).
    mask_truncated: completions cut by the token budget before a stop token get no loss
      (DAPO's overlong filtering, Yu et al. 2025, Sec. 3.4); their rewards still enter the
      group baselines. With a binary verifier a cut trace scores 0, so without the mask its
      negative advantage pushes against long traces as such, whatever they were doing.
    oversample: draw oversample x P prompts per rollout and keep the P groups whose rewards
      vary first (`jaxlm.rl.advantages.fill_groups`: DAPO's sample-until-full at a fixed
      cost); 1 keeps every drawn group.
    prompt_filter: "greso" skips, before rollout, prompts whose latest groups all had zero
      reward variance (`jaxlm.rl.selection`: GRESO, Zheng et al. 2025), so more of the drawn
      groups vary; needs prompt_order "uniform" and group_size >= 2. "none" draws them all.
    filter_target: GRESO's target share of zero-variance groups among those drawn.
    adaptive_oversample: draw K = 1.25 P / (1 - z) prompts instead of oversample x P, z the
      previous draw's share of zero-variance groups (K rounded up to a multiple of P / 4,
      within [P, oversample x P]; the first draw takes the most): GRESO's adaptive batch size
      (Zheng et al. 2025, Sec. 4.2), which turns a filter's higher yield of varying groups
      into fewer rollouts; each distinct K compiles the sampler once (at most 4 x oversample
      shapes). Needs oversample > 1.
    critic: "none", "head" (value head on the policy trunk) or "separate" (its own transformer
      initialised from the policy); "gae" needs one.
    gamma, gae_lambda: discount and GAE lambda (per action token).
    whiten_advantages: normalise GAE advantages to zero mean, unit std over the batch's tokens.
    aggregation: loss aggregation (`jaxlm.losses.pg.AGGREGATIONS`).
    max_len_constant: L of "seq_sum_constant" (default: max_new_tokens).
    clip_low, clip_high, dual_clip: PPO ratio clipping (`jaxlm.losses.pg.ppo_surrogate`).
    kl_coef: beta of the KL to the reference policy (0: no reference model at all).
    kl_estimator: "k1" | "k2" | "k3".
    kl_placement: "in_loss" | "in_reward" (which gradient each follows: `jaxlm.losses.pg`).
    entropy_coef: weight of the entropy bonus.
    vf_coef, vf_clip: value-loss weight and clip (None: unclipped).
    epochs, minibatches: updates per rollout batch (PPO epochs x minibatches).
    eval_every: rollout batches between evaluations (0: start and end only).
    eval_samples: sampled completions per evaluation prompt (pass@1 estimate).
    reward_scale: multiplies the task's rewards before advantages and value targets (logged
      rewards stay unscaled); keeps a critic's targets O(1) on games with returns of -100.
    transitions: multi-turn tasks: (action, observation) chunks of context the policy reads
      (`jaxlm.evaluation.prompt_ids`; the offline windows' `window_transitions`).
    eval_episodes: multi-turn tasks: evaluation episodes.
    fused_xent: the loss takes its log-probs and entropies from the fused, chunked output
      projection (`jaxlm.losses.xent.token_logprob_entropy`: no [B, T, V] logits and their
      gradient in the update) whenever the sampling distribution has no top-k / top-p filter
      (the filters need the full logits); False always uses the logits. It trades time for
      memory: the backward recomputes each chunk's logits (4 projection matmuls instead of
      3); the log-prob + entropy gradient alone measured 0.83-0.94x the plain path's speed
      for V = 40 and 0.90x for 8 x 128 tokens at D = 384, V = 50257 (2 loaded cores), while
      the [B, T, V] logits and their gradient are never held.
  """
  model: TransformerConfig = TransformerConfig(d_model=64, n_layers=2, n_heads=4, d_ff=256,
                                               pos="rope")
  train: TrainConfig = TrainConfig(num_steps=100, batch_size=64, lr=1e-4, warmup=0,
                                   log_every=5, checkpoint_every=50)
  group_size: int = 8
  prompt_order: Literal["uniform", "epochs"] = "uniform"
  sampling: rollout_lib.Sampling = rollout_lib.Sampling()
  estimator: Literal["grpo", "dr_grpo", "rloo", "gae"] = "grpo"
  std_ddof: int = 1
  advantage_mode: Literal["full", "positive_only", "negative_only"] = "full"
  drop_zero_variance: bool = False
  mask_truncated: bool = False
  oversample: int = 1
  prompt_filter: Literal["none", "greso"] = "none"
  filter_target: float = 0.25
  adaptive_oversample: bool = False
  critic: Literal["none", "head", "separate"] = "none"
  gamma: float = 1.0
  gae_lambda: float = 0.95
  whiten_advantages: bool = True
  aggregation: Literal["seq_mean_token_mean", "token_mean", "seq_sum_constant"] = "token_mean"
  max_len_constant: int | None = None
  clip_low: float = 0.2
  clip_high: float = 0.2
  dual_clip: float | None = None
  kl_coef: float = 0.0
  kl_estimator: Literal["k1", "k2", "k3"] = "k3"
  kl_placement: Literal["in_loss", "in_reward"] = "in_loss"
  entropy_coef: float = 0.0
  fused_xent: bool = True
  vf_coef: float = 0.5
  vf_clip: float | None = 0.2
  epochs: int = 1
  minibatches: int = 1
  eval_every: int = 0
  eval_samples: int = 4
  reward_scale: float = 1.0
  transitions: int = 1
  eval_episodes: int = 64

  def __post_init__(self):
    checks = [(self.estimator in ESTIMATORS, f"estimator must be one of {ESTIMATORS}"),
              (self.prompt_order in ("uniform", "epochs"),
               'prompt_order must be "uniform" or "epochs"'),
              (self.critic in CRITICS, f"critic must be one of {CRITICS}"),
              (self.oversample >= 1, f"oversample={self.oversample} must be >= 1"),
              (self.oversample == 1 or self.estimator != "gae",
               'oversample selects groups by reward variance: it needs a group estimator, '
               'not "gae"'),
              (self.prompt_filter in ("none", "greso"), 'prompt_filter must be "none" or "greso"'),
              (self.prompt_filter == "none" or (self.prompt_order == "uniform"
                                                and self.group_size >= 2),
               'prompt_filter "greso" needs prompt_order "uniform" and group_size >= 2'),
              (0.0 < self.filter_target < 1.0, f"filter_target={self.filter_target} must be in "
               "(0, 1)"),
              (not self.adaptive_oversample or (self.oversample > 1
                                                and self.prompt_order == "uniform"),
               'adaptive_oversample needs oversample > 1 (its largest draw) and prompt_order '
               '"uniform" (epochs walk the prompts in fixed-size steps)'),
              (self.estimator != "gae" or self.critic != "none",
               'estimator "gae" needs a critic ("head" or "separate")'),
              (self.advantage_mode in adv_lib.ADVANTAGE_MODES,
               f"advantage_mode must be one of {adv_lib.ADVANTAGE_MODES}"),
              (self.aggregation in pg_losses.AGGREGATIONS,
               f"aggregation must be one of {pg_losses.AGGREGATIONS}"),
              (self.kl_estimator in pg_losses.KL_ESTIMATORS,
               f"kl_estimator must be one of {pg_losses.KL_ESTIMATORS}"),
              (self.kl_placement in pg_losses.KL_PLACEMENTS,
               f"kl_placement must be one of {pg_losses.KL_PLACEMENTS}"),
              (self.group_size >= 1 and self.train.batch_size % self.group_size == 0,
               f"train.batch_size={self.train.batch_size} must be a multiple of group_size="
               f"{self.group_size}"),
              (self.train.batch_size % (self.minibatches * self.train.accum_steps) == 0,
               f"train.batch_size={self.train.batch_size} must be divisible by minibatches x "
               f"train.accum_steps = {self.minibatches} x {self.train.accum_steps}")]
    for ok, message in checks:
      if not ok:
        raise ValueError(f"pg.Config: {message}")

  @property
  def prompts_per_step(self) -> int:
    return self.train.batch_size // self.group_size


def task_rewards(task: PromptTask, split: str, indices: Sequence[int],
                 c: rollout_lib.Completions) -> np.ndarray:
  """[B] host rewards of the completions of prompts `indices` (stop tokens dropped)."""
  ids = rollout_lib.completion_ids(c, task.stop_tokens)
  return np.array([task.reward(split, int(i), row) for i, row in zip(indices, ids)],
                  np.float32)


@flax.struct.dataclass
class OnlineBatch:
  """One rollout batch; per-token fields in the decision frame (`jaxlm.rl.returns`).

  Attributes:
    rl: the token-level batch (completion tokens are actions; loss_mask drops filtered groups).
    behaviour_logp: log-probs of the sampled tokens under the rollout-time policy.
    ref_logp: the same under the reference policy (0 without one).
    advantages: per-token advantages.
    returns: value targets (GAE advantages + old values; 0 without a critic).
    old_values: rollout-time values (0 without a critic).
    norm_share: [B] this row's share of its update's loss normaliser (`prepare_batch`).
    reward, length, zero_var, sampler_gap: [B] logging fields: outcome reward, completion
      tokens, the row's group had zero reward variance, |trainer - sampler| log-prob (max).
  """
  rl: RLBatch
  behaviour_logp: jax.Array
  ref_logp: jax.Array
  advantages: jax.Array
  returns: jax.Array
  old_values: jax.Array
  norm_share: jax.Array
  reward: jax.Array
  length: jax.Array
  zero_var: jax.Array
  sampler_gap: jax.Array


def task_sampling(config: Config, task: PromptTask) -> rollout_lib.Sampling:
  """The config's sampling with the task's stop and pad ids."""
  return dataclasses.replace(config.sampling, stop_tokens=task.stop_tokens, pad_id=task.pad_id)


def networks(config: Config, pretrained: Any = None):
  """(model, init_fn, forward, policy_logits).

  `forward(params, tokens, mask) -> (logits_BxTxV, values_BxT or None)`; with
  `with_logits=False` the first item is (final hidden states, output matrix) instead, for the
  fused losses of `jaxlm.losses.xent`;
  `policy_logits(params["policy"], tokens, mask)` (what the reference model runs). Params are
  {"policy": transformer} plus {"value": {"head"}} (critic "head", on the policy trunk's hidden
  states) or {"value": {"trunk", "head"}} ("separate": a transformer initialised like the
  policy, `pretrained` included).
  """
  model, init_lm, policy_logits = lm_networks(config.model, pretrained)
  head = MLPHead(1, out_axis=None, squeeze=True)

  def init_fn(key):
    k_policy, k_head = jax.random.split(key)
    params = {"policy": init_lm(k_policy)}
    if config.critic != "none":
      value = {"head": head.init(k_head, jnp.zeros((1, 1, config.model.d_model)))["params"]}
      if config.critic == "separate":
        value["trunk"] = jax.tree.map(jnp.copy, params["policy"])
      params["value"] = value
    return params

  def forward(params, tokens_BxT, mask_BxT, *, with_logits=True):
    out = model.apply({"params": params["policy"]}, tokens_BxT, attention_mask_BxT=mask_BxT,
                      with_logits=with_logits)
    policy = (out.logits if with_logits
              else (out.hidden, output_matrix(params["policy"], config.model)))
    if config.critic == "none":
      return policy, None
    hidden = out.hidden
    if config.critic == "separate":
      hidden = model.apply({"params": params["value"]["trunk"]}, tokens_BxT,
                           attention_mask_BxT=mask_BxT).hidden
    return policy, head.apply({"params": params["value"]["head"]}, hidden)

  return model, init_fn, forward, policy_logits


def _whiten(x_BxT, mask_BxT):
  mean = masked_mean(x_BxT, mask_BxT)
  var = masked_mean(jnp.square(x_BxT - mean), mask_BxT)
  return jnp.where(mask_BxT > 0, (x_BxT - mean) * jax.lax.rsqrt(var + 1e-8), 0.0)


def outcome_advantages(config: Config, rewards_PxG: jax.Array) -> jax.Array:
  """[P, G] advantages of the group estimators ("grpo", "dr_grpo", "rloo") from outcomes."""
  if config.estimator == "rloo":
    return adv_lib.rloo_advantages(rewards_PxG)
  return adv_lib.group_advantages(rewards_PxG, ddof=config.std_ddof,
                                  scale="std" if config.estimator == "grpo" else "none")


def score(config: Config, forward: Callable, policy_logits: Callable, params: Any,
          ref_params: Any, c: rollout_lib.Completions, rewards_B: jax.Array) -> OnlineBatch:
  """Single-turn completions + outcome rewards -> `OnlineBatch` (behaviour/ref log-probs,
  values, advantages). Pure; the rollout jits it."""
  b = rewards_B.shape[0]
  return score_rows(config, forward, policy_logits, params, ref_params,
                    rollout_lib.completion_batch(c, rewards_B), c.sampler_logp_BxT,
                    bootstrap_B=jnp.zeros((b,), jnp.float32), outcome_B=rewards_B,
                    reward=rewards_B, length=c.lengths_B.astype(jnp.float32),
                    truncated_B=~c.done_B)


def score_rows(config: Config, forward: Callable, policy_logits: Callable, params: Any,
               ref_params: Any, rl: RLBatch, sampler_logp_BxT: jax.Array, *,
               bootstrap_B: jax.Array, outcome_B: jax.Array | None, reward: jax.Array,
               length: jax.Array, advantages_B: jax.Array | None = None,
               zero_var_B: jax.Array | None = None,
               truncated_B: jax.Array | None = None) -> OnlineBatch:
  """Token rows (single-turn completions or per-turn episode rows, `jaxlm.rl.episodes`) ->
  `OnlineBatch`. `outcome_B` is the per-row outcome the group estimators read (None for
  multi-turn rows, which need "gae"); `bootstrap_B` marks bootstrap rows; `reward` and
  `length` are [B] logging fields. Rewards the advantages see are scaled by reward_scale.
  `advantages_B` (with its rows' `zero_var_B`) replaces the estimator by advantages the caller
  computed per row, e.g. one rollout's advantage on each of its threads (`jaxlm.algos.apr`);
  the advantage mode still applies. `truncated_B` flags rows a budget cut (their loss is
  masked with `mask_truncated`)."""
  sampling = config.sampling
  rl = rl.replace(rewards=rl.rewards * config.reward_scale)
  logits, values = forward(params, rl.tokens, rl.attention_mask)
  logp = sampling.logprobs(logits, rl.tokens)
  mask = decision_view(rl).trains
  zeros = jnp.zeros_like(logp)
  ref_logp = zeros
  if ref_params is not None:
    ref_logp = sampling.logprobs(policy_logits(ref_params, rl.tokens, rl.attention_mask),
                                 rl.tokens)
  penalty = zeros
  if config.kl_coef > 0 and config.kl_placement == "in_reward":
    penalty = pg_losses.kl_in_reward(logp, ref_logp, mask, coef=config.kl_coef,
                                     estimator=config.kl_estimator)
  b = rl.tokens.shape[0]
  zero_var_B = jnp.zeros((b,), bool) if zero_var_B is None else jnp.asarray(zero_var_B, bool)
  keep_B = jnp.ones((b,), jnp.float32)
  if advantages_B is not None:
    adv = adv_lib.token_advantages(advantages_B, mask)
    returns = old_values = zeros
  elif config.estimator == "gae":
    # Token-frame rewards: the KL penalty of decision t is a reward of token t + 1.
    penalised = rl.replace(rewards=rl.rewards - jnp.pad(penalty[:, :-1], ((0, 0), (1, 0))))
    values = jnp.where((mask > 0) | (bootstrap_B[:, None] > 0), values, 0.0)
    adv = episodes_lib.episode_gae(values, penalised, bootstrap_B, gamma=config.gamma,
                                   lambda_=config.gae_lambda)
    returns, old_values = adv + values, values
    if config.whiten_advantages:
      adv = _whiten(adv, mask)
  else:
    if outcome_B is None:
      raise ValueError(f'estimator "{config.estimator}" needs one outcome per row '
                       '(single-turn); multi-turn episodes need estimator "gae"')
    g = config.group_size
    rewards_PxG = outcome_B.reshape(b // g, g) * config.reward_scale
    zero_var_B = jnp.repeat(adv_lib.zero_variance_groups(rewards_PxG), g)
    if config.drop_zero_variance:
      keep_B = 1.0 - zero_var_B.astype(jnp.float32)
    seq_rewards_PxG = rewards_PxG - jnp.sum(penalty, axis=1).reshape(b // g, g)
    adv = adv_lib.token_advantages(outcome_advantages(config, seq_rewards_PxG).reshape(-1),
                                   mask)
    returns = old_values = zeros
  adv = adv_lib.advantage_mode(adv, config.advantage_mode)
  if config.mask_truncated and truncated_B is not None:
    keep_B = keep_B * (1.0 - jnp.asarray(truncated_B, jnp.float32))
  trained = rl.action_mask if rl.loss_mask is None else rl.loss_mask  # weights may be < 1
  rl = rl.replace(loss_mask=trained * keep_B[:, None])
  return OnlineBatch(rl=rl, behaviour_logp=logp, ref_logp=ref_logp, advantages=adv,
                     returns=returns, old_values=old_values,
                     norm_share=jnp.zeros((b,), jnp.float32), reward=reward, length=length,
                     zero_var=zero_var_B.astype(jnp.float32),
                     sampler_gap=rollout_lib.behaviour_gap(rl, logp, sampler_logp_BxT))


def prepare_batch(config: Config, batch: OnlineBatch) -> OnlineBatch:
  """Writes each row's share of the (mini)batch's loss normaliser (`make_train_step`'s
  prepare_batch): the micro-batch losses then use sum(norm_share) = normaliser x their share
  of the rows, and the mean of their gradients is the whole minibatch's gradient."""
  mask = decision_view(batch.rl).trains
  norm = pg_losses.aggregation_normalizer(
      mask, config.aggregation,
      max_len=config.max_len_constant or config.sampling.max_new_tokens)
  rows = mask.shape[0]
  return batch.replace(norm_share=jnp.full((rows,), norm / rows, jnp.float32))


def make_loss(config: Config, forward: Callable):
  """The pure loss `(params, batch, rng, *, state) -> (loss, metrics)`: PPO surrogate, KL to
  the reference (in the loss), entropy bonus and value loss, one normaliser for all."""
  sampling = config.sampling

  fused = config.fused_xent and not sampling.filtered

  def loss_fn(params, batch: OnlineBatch, rng, *, state):
    del rng, state
    rl = batch.rl
    view = decision_view(rl)
    mask = view.trains
    if fused:
      (hidden_BxTxD, w_VxD), values = forward(params, rl.tokens, rl.attention_mask,
                                              with_logits=False)
      logp, entropy_BxT = xent.token_logprob_entropy(hidden_BxTxD, w_VxD, view.actions,
                                                     temperature=sampling.temperature)
    else:
      logits, values = forward(params, rl.tokens, rl.attention_mask)
      z = sampling.logits(logits)
      logp = pg_losses.token_logprobs(z, view.actions)
      entropy_BxT = pg_losses.token_entropy(z)
    agg = dict(aggregation=config.aggregation, normalizer=jnp.sum(batch.norm_share))
    loss, metrics = pg_losses.ppo_surrogate(
        logp, batch.behaviour_logp, batch.advantages, mask, clip_low=config.clip_low,
        clip_high=config.clip_high, dual_clip=config.dual_clip, **agg)
    if config.kl_coef > 0:  # the reference exists only then
      kl_values = pg_losses.kl_estimator(logp, batch.ref_logp, mask, config.kl_estimator)
      metrics["kl"] = masked_mean(jax.lax.stop_gradient(kl_values), mask)
    if config.kl_coef > 0 and config.kl_placement == "in_loss":
      kl_loss, _ = pg_losses.kl_in_loss(logp, batch.ref_logp, mask, coef=config.kl_coef,
                                        estimator=config.kl_estimator, **agg)
      loss, metrics["kl_loss"] = loss + kl_loss, kl_loss
    entropy = pg_losses.aggregate(entropy_BxT, mask, **agg)
    metrics["entropy"] = jax.lax.stop_gradient(entropy)
    if config.entropy_coef:
      loss = loss - config.entropy_coef * entropy
    if values is not None:
      vf_loss, vf_metrics = pg_losses.value_loss(values, batch.old_values, batch.returns, mask,
                                                 clip=config.vf_clip, **agg)
      loss = loss + config.vf_coef * vf_loss
      metrics.update(vf_metrics)
    metrics.update(reward=jnp.mean(batch.reward), response_length=jnp.mean(batch.length),
                   zero_variance_share=jnp.mean(batch.zero_var),
                   sampler_gap=jnp.max(batch.sampler_gap),
                   advantage_mean=masked_mean(batch.advantages, mask))
    return loss, metrics

  return loss_fn


class Rollouts(selection.PromptDraws):
  """`fit`'s data: `rollouts(state)` samples, scores and returns the next `OnlineBatch` from
  the current policy; its position (the rollout index) is checkpointed."""

  def __init__(self, config: Config, task: PromptTask, model: Any, forward: Callable,
               policy_logits: Callable):
    super().__init__(config, len(task.train_prompts))
    self.task = task
    self._sample = jax.jit(functools.partial(rollout_lib.sample, model,
                                             sampling=task_sampling(config, task),
                                             group_size=config.group_size))
    self._score = jax.jit(functools.partial(score, config, forward, policy_logits))

  def __call__(self, state: train_lib.TrainState) -> OnlineBatch:
    prompts, key = self.begin(state)
    tokens, mask = self.task.encode("train", prompts)
    c = self._sample(state.params["policy"], tokens, mask, key)
    rewards = task_rewards(self.task, "train", np.repeat(prompts, self.config.group_size), c)
    rows = self.keep(prompts, rewards)
    if rows is not None:
      c, rewards = jax.tree.map(lambda x: x[rows], c), rewards[rows]
    return self._score(state.params, state.extra, c, jnp.asarray(rewards))

  def num_tokens(self, batch: OnlineBatch) -> int:
    return int(jnp.sum(batch.rl.attention_mask))


def evaluate(model: Any, policy_params: Any, task: PromptTask, config: Config, *,
             split: str = "eval", seed: int = 0) -> dict[str, float]:
  """Held-out pass@1 (mean success of `eval_samples` sampled completions per prompt, at the
  training sampling settings), mean reward, greedy pass@1 and mean completion length."""
  sampling = task_sampling(config, task)
  prompts = task.eval_prompts if split == "eval" else task.train_prompts
  indices = np.arange(len(prompts))
  tokens, mask = task.encode(split, indices)
  c = rollout_lib.sample(model, policy_params, tokens, mask, jax.random.key(seed), sampling,
                         config.eval_samples)
  rewards = task_rewards(task, split, np.repeat(indices, config.eval_samples), c)
  out = generation.generate(model, policy_params, tokens, mask, temperature=0.0,
                            max_new_tokens=sampling.max_new_tokens,
                            stop_tokens=sampling.stop_tokens, pad_id=sampling.pad_id)
  greedy = task_rewards(task, split, indices, rollout_lib.realign(tokens, mask, out))
  return {"pass@1": float(np.mean(rewards >= 1.0)), "reward": float(np.mean(rewards)),
          "greedy": float(np.mean(greedy >= 1.0)),
          "response_length": float(np.mean(np.asarray(c.lengths_B)))}


SHOWN = ("reward", "kl", "entropy", "response_length", "clip_frac", "grad_norm")


def train(config: Config, task: Any, workdir: str, *, pretrained: Any = None,
          resume: bool = False, evaluate_fn: Callable[[Any], dict[str, float]] | None = None,
          rollouts: Callable[..., IndexedBatches] | None = None,
          curves: tuple[tuple[str, ...], str] = (
              ("reward", "eval/reward", "eval/pass@1", "eval/greedy"), "reward / pass@1")
          ) -> tuple[train_lib.TrainState, list[dict[str, float]]]:
  """Online RL from `pretrained` policy params (or a fresh init) in `workdir`: metrics.jsonl,
  checkpoints, learning_curve.png (`curves`: the keys and the y label) and length_curve.png.
  `task` is a `PromptTask`, or the task a custom `rollouts` reads (a multi-turn game).
  `evaluate_fn(policy_params) -> scalars` replaces the default evaluation (`evaluate`), run at
  step 0 of a fresh run, every `eval_every` steps and at the end; its rows are the `eval/`
  scalars of metrics.jsonl (`eval_rows` reads them back). `rollouts(config, task, model,
  forward, policy_logits)` replaces the prompt task's `Rollouts`
  (`pg_threads.ThreadRollouts`, `pg_episodes.EpisodeRollouts` for a multi-turn game)."""
  model, init_fn, forward, policy_logits = networks(config, pretrained)
  if rollouts is None and not isinstance(task, PromptTask):
    raise TypeError(f"pg.train: {type(task).__name__} is not a PromptTask; a multi-turn game "
                    "trains with jaxlm.algos.pg_episodes.train")
  data = (rollouts or Rollouts)(config, task, model, forward, policy_logits)
  evaluate_fn = evaluate_fn or (lambda p: evaluate(model, p, task, config))
  reference = None
  if config.kl_coef > 0:
    reference = lambda params: jax.tree.map(jnp.copy, params["policy"])
  state, history = train_lib.fit(
      workdir, config.train, init_fn, make_loss(config, forward), data, resume=resume,
      extra_fn=reference, saved_config=config, epochs=config.epochs,
      minibatches=config.minibatches, prepare_batch=functools.partial(prepare_batch, config),
      eval_fn=lambda s: evaluate_fn(s.params["policy"]), eval_every=config.eval_every, show=SHOWN)
  if jax.process_index() == 0 and history:
    plots.plot_learning_curve(history, f"{workdir}/learning_curve.png",
                              keys=curves[0], ylabel=curves[1])
    plots.plot_learning_curve(history, f"{workdir}/length_curve.png",
                              keys=("response_length", "eval/response_length"),
                              ylabel="completion (action) tokens")
  return state, history


def eval_rows(workdir: str) -> dict[int, dict[str, float]]:
  """{step: the evaluation logged at that step} from `<workdir>/metrics.jsonl` (the `eval/`
  prefix dropped, counts back to int), the whole run's rows even across a --resume."""
  if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    return {}
  rows = {}
  for row in metrics_lib.read_metrics(workdir):
    scalars = {k[len("eval/"):]: v for k, v in row.items() if k.startswith("eval/")}
    if scalars:
      rows[int(row["step"])] = {k: int(v) if k == "episodes" else v for k, v in scalars.items()}
  return rows


def paired_evaluation(evaluate_fn: Callable[[Any], dict[str, Any]], workdir: str, *,
                      key: str = "solved") -> Callable[[Any], dict[str, float]]:
  """`evaluate_fn` for `train` that also reports the change from the starting policy.

  `evaluate_fn(params)` returns scalars and, under `key`, per-item outcomes (e.g. 0/1 per
  held-out problem, always the same items in the same order). The outcomes of a fresh run's
  step-0 evaluation (the starting policy) are kept in `<workdir>/eval_start.json`; every
  evaluation then adds "gain", its mean per-item difference from the start, and "gain_ci95",
  the 95% Student-t half-width paired over items (much tighter than two independent accuracies
  when most items agree). A resumed run reads the file; a run whose first evaluation was not
  at step 0 (its workdir predates this) reports no gain.
  """
  path = os.path.join(workdir, "eval_start.json")
  start = None  # read once

  def wrapped(params):
    nonlocal start
    out = dict(evaluate_fn(params))
    got = np.asarray(out.pop(key), np.float64)
    if start is None and os.path.exists(path):
      start = np.asarray(files.read_json(path), np.float64)
    elif start is None and not eval_rows(workdir):  # the step-0 evaluation of a fresh run
      files.write_json(path, got.tolist())
      start = got
    elif start is None:
      return out
    if start.shape != got.shape:
      raise ValueError(f"{path} holds {start.size} outcomes, the evaluation gave {got.size}: "
                       "the held-out set changed")
    gain, half = mean_confidence_interval(got - start)
    return {**out, "gain": gain, "gain_ci95": half}

  return wrapped
