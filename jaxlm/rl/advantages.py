"""Sequence-level advantages for online RL on language: GRPO, Dr. GRPO, RLOO and DAPO filters.

Shape convention. Rewards come as `rewards_PxG`: P prompts, each with a group of G sampled
responses, one scalar outcome reward per response. An optional `mask_PxG` (1 = valid response)
lets groups be ragged (e.g. a failed generation); invalid entries are ignored by the group
statistics and get advantage 0. Functions return `[P, G]` advantages; the flat batch the policy
loss sees is row-major, `adv_B = adv_PxG.reshape(-1)` with B = P * G (response g of prompt p is
row p * G + g), and `token_advantages` spreads `adv_B` over each row's action tokens.

Degenerate groups. A group whose valid rewards are all equal (including groups with 0 or 1 valid
responses) carries no learning signal: every function here returns EXACTLY 0 there, never NaN,
and its gradient with respect to the rewards is 0 too (divisions are guarded with a
`jnp.where` on the denominator as well as on the result, so no branch ever divides by 0).
Equality is tested exactly (max == min over the group), not by a variance threshold, so
rewards like [0.1, 0.1, 0.1], whose float mean is not exactly 0.1, still give exact zeros.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

ADVANTAGE_MODES = ("full", "positive_only", "negative_only")
GROUP_SCALES = ("std", "none")


def _group_stats(rewards_PxG: jax.Array, mask_PxG: jax.Array | None
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
  """(rewards with invalid entries zeroed, valid_PxG, n_P, mean_P, degenerate_P)."""
  chex.assert_rank(rewards_PxG, 2)
  r_PxG = jnp.asarray(rewards_PxG, jnp.float32)
  if mask_PxG is None:
    valid_PxG = jnp.ones(r_PxG.shape, bool)
  else:
    chex.assert_equal_shape([rewards_PxG, mask_PxG])
    valid_PxG = jnp.asarray(mask_PxG) > 0
  r_PxG = jnp.where(valid_PxG, r_PxG, 0.0)
  n_P = jnp.sum(valid_PxG, axis=-1).astype(jnp.float32)
  mean_P = jnp.sum(r_PxG, axis=-1) / jnp.maximum(n_P, 1.0)
  hi_P = jnp.max(jnp.where(valid_PxG, r_PxG, -jnp.inf), axis=-1)
  lo_P = jnp.min(jnp.where(valid_PxG, r_PxG, jnp.inf), axis=-1)
  degenerate_P = (n_P <= 1) | (hi_P <= lo_P)
  return r_PxG, valid_PxG, n_P, mean_P, degenerate_P


def zero_variance_groups(rewards_PxG: jax.Array, mask_PxG: jax.Array | None = None
                         ) -> jax.Array:
  """Groups whose valid rewards are all equal (or that hold fewer than 2 valid responses).

  These are the groups DAPO's dynamic sampling discards (Yu et al. 2025, "DAPO: An Open-Source
  LLM Reinforcement Learning System at Scale", Sec. 3.2: prompts whose sampled responses are
  all correct or all wrong have zero group-relative advantage and so no policy gradient).

  Args:
    rewards_PxG: [P, G] rewards.
    mask_PxG: optional [P, G] validity mask.

  Returns:
    [P] bool, True for a zero-variance group.
  """
  return _group_stats(rewards_PxG, mask_PxG)[-1]


def dynamic_sampling_mask(rewards_PxG: jax.Array, mask_PxG: jax.Array | None = None
                          ) -> tuple[jax.Array, jax.Array]:
  """DAPO dynamic-sampling filter: which groups to keep and the share dropped.

  A trainer multiplies each response's loss mask by `keep_P[p]` (or drops the rows and samples
  more prompts, as DAPO does, until the batch is full) and logs `dropped_share`.

  Args:
    rewards_PxG: [P, G] rewards.
    mask_PxG: optional [P, G] validity mask.

  Returns:
    keep_P: [P] float32, 1 for groups with reward variance, 0 for zero-variance groups.
    dropped_share: scalar float32, the fraction of the P groups dropped.
  """
  zero_P = zero_variance_groups(rewards_PxG, mask_PxG)
  keep_P = 1.0 - zero_P.astype(jnp.float32)
  return keep_P, jnp.mean(zero_P.astype(jnp.float32))


def fill_groups(rewards_KxG: jax.Array, num: int) -> jax.Array:
  """DAPO dynamic sampling by over-sampling: which `num` of K >= num drawn groups fill a batch.

  DAPO (Yu et al. 2025, Sec. 3.2, Algorithm 1) keeps sampling prompts until the batch holds
  only groups whose rewards vary. With static shapes we draw K groups at once and keep the
  first `num` that vary, in draw order; when fewer than `num` vary, the earliest zero-variance
  groups fill the rest (a trainer masks them with `dynamic_sampling_mask`).

  Args:
    rewards_KxG: [K, G] rewards of the drawn groups.
    num: groups to keep (<= K).

  Returns:
    [num] int32 indices into the K groups, the varying groups first.
  """
  k = rewards_KxG.shape[0]
  if not 0 < num <= k:
    raise ValueError(f"fill_groups: num={num} must be in [1, {k}] (the drawn groups)")
  zero_K = zero_variance_groups(rewards_KxG)
  return jnp.argsort(zero_K.astype(jnp.int32), stable=True)[:num].astype(jnp.int32)


def group_advantages(rewards_PxG: jax.Array, mask_PxG: jax.Array | None = None, *,
                     scale: str = "std", ddof: int = 1, eps: float = 1e-6) -> jax.Array:
  """Group-relative advantages: GRPO (scale="std") and Dr. GRPO (scale="none").

  GRPO with outcome supervision (Shao et al. 2024, "DeepSeekMath: Pushing the Limits of
  Mathematical Reasoning in Open Language Models", Sec. 4.1.2):
    A_pg = (r_pg - mean_g' r_pg') / (std_g' r_pg' + eps).
  Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective",
  Fig. 1 and Sec. 3) drops the std division, which up-weights groups that are nearly all solved
  or all failed (the "question-level difficulty bias"):  A_pg = r_pg - mean_g' r_pg'.

  ddof. The paper writes std() without saying which; the reference implementations divide by
  `torch.std`, which is the unbiased estimate (ddof=1), in TRL's GRPOTrainer and in verl's
  GRPO advantage alike, so ddof=1 is the default here; pass ddof=0 for the population std.
  eps defaults to 1e-6 (verl; TRL adds 1e-4). Groups with fewer than ddof + 1 valid responses,
  or zero variance, get exactly 0 (module docstring).

  Args:
    rewards_PxG: [P, G] rewards (P prompts x G responses each).
    mask_PxG: optional [P, G] validity mask; invalid entries are excluded and get 0.
    scale: "std" (GRPO) or "none" (Dr. GRPO).
    ddof: delta degrees of freedom of the std (denominator n - ddof), 0 or 1 in practice.
    eps: added to the std before dividing.

  Returns:
    [P, G] float32 advantages.
  """
  if scale not in GROUP_SCALES:
    raise ValueError(f"scale must be one of {GROUP_SCALES}, got {scale!r}")
  r_PxG, valid_PxG, n_P, mean_P, degenerate_P = _group_stats(rewards_PxG, mask_PxG)
  centred_PxG = jnp.where(valid_PxG, r_PxG - mean_P[:, None], 0.0)
  if scale == "std":
    dof_P = n_P - ddof
    degenerate_P = degenerate_P | (dof_P <= 0)
    var_P = jnp.sum(jnp.square(centred_PxG), axis=-1) / jnp.where(degenerate_P, 1.0, dof_P)
    std_P = jnp.sqrt(jnp.where(degenerate_P, 1.0, var_P))
    centred_PxG = centred_PxG / (std_P[:, None] + eps)
  return jnp.where(degenerate_P[:, None] | ~valid_PxG, 0.0, centred_PxG)


def rloo_advantages(rewards_PxG: jax.Array, mask_PxG: jax.Array | None = None) -> jax.Array:
  """REINFORCE leave-one-out advantages: A_pg = r_pg - mean_{g' != g} r_pg'.

  Kool et al. 2019, "Buy 4 REINFORCE Samples, Get a Baseline for Free!"; Ahmadian et al. 2024,
  "Back to Basics: Revisiting REINFORCE-Style Optimization for Learning from Human Feedback in
  LLMs", Sec. 3.2 (RLOO). The baseline of each sample excludes that sample, so it is
  independent of the sample and the estimator stays unbiased; equivalently
  A_pg = n / (n - 1) * (r_pg - mean_g' r_pg') for a group of n valid responses.

  Args:
    rewards_PxG: [P, G] rewards.
    mask_PxG: optional [P, G] validity mask; invalid entries are excluded and get 0.

  Returns:
    [P, G] float32 advantages; 0 for groups of size 1 and zero-variance groups.
  """
  r_PxG, valid_PxG, n_P, _, degenerate_P = _group_stats(rewards_PxG, mask_PxG)
  others_P = jnp.where(degenerate_P, 1.0, n_P - 1.0)
  loo_mean_PxG = (jnp.sum(r_PxG, axis=-1, keepdims=True) - r_PxG) / others_P[:, None]
  return jnp.where(degenerate_P[:, None] | ~valid_PxG, 0.0, r_PxG - loo_mean_PxG)


def advantage_mode(adv: jax.Array, mode: str) -> jax.Array:
  """Keeps all, only the positive or only the negative advantages (the rest become 0).

  For ablations of the negative-gradient term: "positive_only" trains only on better-than-
  baseline samples (like filtered behaviour cloning), "negative_only" only pushes probability
  away from worse-than-baseline samples.

  Args:
    adv: advantages of any shape.
    mode: one of "full", "positive_only", "negative_only".

  Returns:
    Advantages of the same shape and dtype.
  """
  if mode == "full":
    return adv
  if mode == "positive_only":
    return jnp.where(adv > 0, adv, jnp.zeros_like(adv))
  if mode == "negative_only":
    return jnp.where(adv < 0, adv, jnp.zeros_like(adv))
  raise ValueError(f"mode must be one of {ADVANTAGE_MODES}, got {mode!r}")


def token_advantages(adv_B: jax.Array, action_mask_BxT: jax.Array) -> jax.Array:
  """Broadcasts one advantage per sequence to that sequence's action tokens.

  Args:
    adv_B: [B] sequence advantages (e.g. `group_advantages(...).reshape(-1)`).
    action_mask_BxT: [B, T] mask of trained action tokens in the decision frame of the policy
      loss (`jaxlm.rl.returns.decision_view(batch).trains`: position t scores token t+1).

  Returns:
    [B, T] float32: adv_B[b] where the mask is 1, 0 elsewhere.
  """
  chex.assert_rank([adv_B, action_mask_BxT], [1, 2])
  chex.assert_equal_shape_prefix([adv_B, action_mask_BxT], 1)
  mask_BxT = jnp.asarray(action_mask_BxT, jnp.float32)
  return jnp.where(mask_BxT > 0, jnp.asarray(adv_B, jnp.float32)[:, None], 0.0)
