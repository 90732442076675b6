"""Policy-gradient losses for online RL on language: PPO / GRPO / DAPO surrogates, the PPO value
loss, entropy, and KL to a reference policy (sampled-token estimators and the exact KL).

Alignment. Every [B, T] array is in the decision frame of `jaxlm.rl.returns`: position t holds
quantities of the token t+1 chosen from the model output at t (jaxlm.data.batch). So
  logp_BxT = token_logprobs(logits_BxTxV, decision_view(batch).actions)
  mask_BxT = decision_view(batch).trains
and advantages from `jaxlm.rl.returns.batch_gae` or `jaxlm.rl.advantages.token_advantages`
are already in this frame. Masked-out positions never contribute a value or a gradient (their
log-ratios are replaced by 0 before any exp, so padding garbage cannot produce inf/NaN).

Aggregation. A per-token loss l_bt is reduced to a scalar sum_bt w_bt l_bt, with weights
  "seq_mean_token_mean":  w_bt = m_bt / (n_b * S)   per-sequence token mean, then mean over
                          sequences (GRPO, Shao et al. 2024, DeepSeekMath Eq. 3); n_b = sum_t
                          m_bt, S = number of sequences with at least one token.
  "token_mean":           w_bt = m_bt / N          global token mean (DAPO, Yu et al. 2025,
                          Sec. 3.3, token-level policy gradient loss); N = sum_bt m_bt.
  "seq_sum_constant":     w_bt = m_bt / (L * B)    token sum divided by a constant (Dr. GRPO,
                          Liu et al. 2025): L = the maximum response length (default T), B =
                          the number of rows in the batch, whatever their masks.
Micro-batching contract. The normaliser (S, N or L * B) is a scalar of the GLOBAL batch:
compute it once with `aggregation_normalizer(mask_BxT_global, ...)` before splitting the batch
into micro-batches BY ROWS, and pass it to every micro-batch's loss. Then the micro-batch
losses, and hence their gradients, SUM to the full-batch loss and gradient exactly (n_b is a
per-row count, so it is local to each micro-batch; a row must not be split across
micro-batches). Gradient accumulation must therefore sum, not average, micro-batch gradients.
With `normalizer=None` a loss uses its own batch's normaliser, i.e. treats it as the global one.
Metrics are plain masked token means over the batch given (for logging only).

KL placement. Which gradient each placement of a sampled-token KL estimate (`kl_estimator`)
follows on-policy (tokens sampled from pi, the sample held fixed when differentiating; see
Schulman 2020, TRL issue #4967, open-instruct issue #534):
  in_loss  k1: E[grad k1] = E[grad log pi] = 0: no regularisation at all in expectation.
  in_loss  k2: E[x grad log pi] = grad KL(pi || ref).
  in_loss  k3: E[(1 - ref/pi) grad log pi] = grad KL(ref || pi), the REVERSE direction
               (mass-covering), although the value of k3 estimates KL(pi || ref).
  in_reward k1: the penalty enters the advantage, so the policy gradient differentiates it
               through the score function: the loss E[beta k1 grad log pi] (reward
               r - beta k1, REINFORCE loss -E[(r - beta k1) grad log pi]) gives
               beta grad KL(pi || ref). For the sequence-level KL a token's penalty must
               also reach the earlier tokens' advantages (through the return-to-go, or a sum
               over the sequence for sequence-level advantages).
"in_reward" is `kl_in_reward`, "in_loss" is `kl_in_loss`.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.losses.lm import gather_actions, masked_mean

AGGREGATIONS = ("seq_mean_token_mean", "token_mean", "seq_sum_constant")
KL_ESTIMATORS = ("k1", "k2", "k3")
KL_PLACEMENTS = ("in_reward", "in_loss")

Metrics = dict[str, jax.Array]


def token_logprobs(logits_BxTxV: jax.Array, actions_BxT: jax.Array) -> jax.Array:
  """log softmax(logits_BxTxV[b, t])[actions_BxT[b, t]] in float32 -> [B, T].

  Pass `actions_BxT = decision_view(batch).actions` (token t+1 at position t), as
  `jaxlm.losses.lm.gather_actions` / `token_nll` do.
  """
  chex.assert_rank([logits_BxTxV, actions_BxT], [3, 2])
  chex.assert_equal_shape_prefix([logits_BxTxV, actions_BxT], 2)
  lse_BxT = jax.nn.logsumexp(logits_BxTxV.astype(jnp.float32), axis=-1)
  return gather_actions(logits_BxTxV, actions_BxT) - lse_BxT


def aggregation_normalizer(mask_BxT: jax.Array, aggregation: str, *,
                           max_len: int | None = None) -> jax.Array:
  """The scalar normaliser of an aggregation mode, from the GLOBAL batch's mask.

  Args:
    mask_BxT: [B, T] mask of trained tokens of the whole (pre-micro-batching) batch.
    aggregation: one of AGGREGATIONS (module docstring).
    max_len: L for "seq_sum_constant" (default T); ignored otherwise.

  Returns:
    Scalar float32: S (sequences with a token, at least 1) for "seq_mean_token_mean", N (tokens,
    at least 1) for "token_mean", L * B for "seq_sum_constant".
  """
  chex.assert_rank(mask_BxT, 2)
  m_BxT = jnp.asarray(mask_BxT, jnp.float32)
  if aggregation == "seq_mean_token_mean":
    return jnp.maximum(jnp.sum(jnp.sum(m_BxT, axis=1) > 0).astype(jnp.float32), 1.0)
  if aggregation == "token_mean":
    return jnp.maximum(jnp.sum(m_BxT), 1.0)
  if aggregation == "seq_sum_constant":
    length = m_BxT.shape[1] if max_len is None else max_len
    return jnp.asarray(float(length * m_BxT.shape[0]), jnp.float32)
  raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def aggregate(loss_BxT: jax.Array, mask_BxT: jax.Array, aggregation: str,
              normalizer: jax.Array | float | None = None) -> jax.Array:
  """sum_bt w_bt loss_bt with the weights of `aggregation` (module docstring).

  Args:
    loss_BxT: [B, T] per-token losses.
    mask_BxT: [B, T] mask of trained tokens.
    aggregation: one of AGGREGATIONS.
    normalizer: the global scalar from `aggregation_normalizer`; None = this batch's own.

  Returns:
    Scalar loss. Summing it over row micro-batches that share the global normaliser gives the
    full-batch value.
  """
  chex.assert_rank([loss_BxT, mask_BxT], 2)
  chex.assert_equal_shape([loss_BxT, mask_BxT])
  m_BxT = jnp.asarray(mask_BxT, jnp.float32)
  if normalizer is None:
    normalizer = aggregation_normalizer(m_BxT, aggregation)
  masked_BxT = jnp.where(m_BxT > 0, loss_BxT * m_BxT, 0.0)
  if aggregation == "seq_mean_token_mean":
    n_B = jnp.sum(m_BxT, axis=1)
    per_seq_B = jnp.sum(masked_BxT, axis=1) / jnp.maximum(n_B, 1.0)
    return jnp.sum(per_seq_B) / normalizer
  if aggregation in ("token_mean", "seq_sum_constant"):
    return jnp.sum(masked_BxT) / normalizer
  raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def _masked_log_ratio(logp_BxT, other_logp_BxT, mask_BxT):
  """logp - stop_gradient(other) on the mask, exactly 0 (with 0 gradient) off it."""
  chex.assert_rank([logp_BxT, other_logp_BxT, mask_BxT], 2)
  chex.assert_equal_shape([logp_BxT, other_logp_BxT, mask_BxT])
  m_BxT = jnp.asarray(mask_BxT, jnp.float32)
  diff_BxT = (jnp.asarray(logp_BxT, jnp.float32)
              - jax.lax.stop_gradient(jnp.asarray(other_logp_BxT, jnp.float32)))
  return jnp.where(m_BxT > 0, diff_BxT, 0.0), m_BxT


def _masked_extremes(x_BxT, m_BxT):
  has = jnp.sum(m_BxT) > 0
  hi = jnp.max(jnp.where(m_BxT > 0, x_BxT, -jnp.inf))
  lo = jnp.min(jnp.where(m_BxT > 0, x_BxT, jnp.inf))
  return jnp.where(has, lo, 0.0), jnp.where(has, hi, 0.0)


def ppo_surrogate(logp_BxT: jax.Array, behaviour_logp_BxT: jax.Array, adv_BxT: jax.Array,
                  mask_BxT: jax.Array, *, clip_low: float = 0.2, clip_high: float = 0.2,
                  dual_clip: float | None = None, aggregation: str = "token_mean",
                  normalizer: jax.Array | float | None = None) -> tuple[jax.Array, Metrics]:
  """Clipped PPO surrogate with asymmetric clipping and optional dual-clip, as a loss.

  Per token, with ratio rho = exp(logp - behaviour_logp) and advantage A (Schulman et al. 2017,
  "Proximal Policy Optimization Algorithms", Eq. 7, negated to a loss):
    l = max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high)).
  Separate clip_low / clip_high are DAPO's Clip-Higher (Yu et al. 2025, Sec. 3.1; they use
  0.2 / 0.28). Dual-clip (Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep
  Reinforcement Learning", Sec. 3) additionally bounds the loss of negative-advantage tokens,
  l = min(l, -c A) = min(l, c |A|) for A < 0, with c = dual_clip > 1, so a very large ratio on
  a bad token cannot produce an unbounded update. A clipped token has zero gradient: rho >
  1 + clip_high with A > 0, rho < 1 - clip_low with A < 0, and rho > c with A < 0 under
  dual-clip. At rho = 1 (first on-policy step) the gradient is the REINFORCE gradient
  -A grad logp with the aggregation weights.

  Args:
    logp_BxT: [B, T] log-probs of the sampled tokens under the current policy (differentiated).
    behaviour_logp_BxT: [B, T] log-probs under the sampling policy (no gradient).
    adv_BxT: [B, T] advantages (no gradient).
    mask_BxT: [B, T] trained tokens.
    clip_low, clip_high: epsilon_low in [0, 1) and epsilon_high >= 0.
    dual_clip: c > 1, or None for no dual-clip.
    aggregation: one of AGGREGATIONS.
    normalizer: global normaliser (module docstring: micro-batching contract).

  Returns:
    (loss, metrics): "pg_loss"; "clip_frac" (share of tokens with zero gradient from any clip),
    "clip_frac_high", "clip_frac_low", "dual_clip_frac"; "approx_kl", the mean of
    (rho - 1) - log rho (Schulman's k3 estimate of KL(behaviour || current)); "ratio_mean",
    "ratio_min", "ratio_max".
  """
  for x in (clip_low, clip_high):
    if isinstance(x, (int, float)) and x < 0:
      raise ValueError(f"clip_low and clip_high must be >= 0, got {clip_low}, {clip_high}")
  if isinstance(clip_low, (int, float)) and clip_low >= 1:
    raise ValueError(f"clip_low must be < 1, got {clip_low}")
  if dual_clip is not None and dual_clip <= 1:
    raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
  log_ratio_BxT, m_BxT = _masked_log_ratio(logp_BxT, behaviour_logp_BxT, mask_BxT)
  chex.assert_equal_shape([adv_BxT, m_BxT])
  adv_BxT = jax.lax.stop_gradient(jnp.asarray(adv_BxT, jnp.float32))
  ratio_BxT = jnp.exp(log_ratio_BxT)
  # The max / min of the formula above, written as an explicit selection: same values, but a
  # tie (rho exactly on a clip boundary, e.g. rho = 1 on-policy with clip_low = 0 or
  # clip_high = 0) keeps the full unclipped gradient instead of jnp.maximum's half-and-half
  # split (which gave 0.75x / 0.625x the REINFORCE gradient on the first on-policy step).
  high_BxT = (ratio_BxT > 1.0 + clip_high) & (adv_BxT > 0)
  low_BxT = (ratio_BxT < 1.0 - clip_low) & (adv_BxT < 0)
  loss_BxT = -adv_BxT * ratio_BxT
  loss_BxT = jnp.where(high_BxT, -adv_BxT * (1.0 + clip_high), loss_BxT)
  loss_BxT = jnp.where(low_BxT, -adv_BxT * (1.0 - clip_low), loss_BxT)
  dual_BxT = jnp.zeros_like(high_BxT)
  if dual_clip is not None:
    dual_BxT = (adv_BxT < 0) & (ratio_BxT > dual_clip)
    loss_BxT = jnp.where(dual_BxT, -dual_clip * adv_BxT, loss_BxT)
  loss = aggregate(loss_BxT, m_BxT, aggregation, normalizer)
  frac = lambda b: masked_mean(b.astype(jnp.float32), m_BxT)
  ratio_min, ratio_max = _masked_extremes(ratio_BxT, m_BxT)
  metrics = {
      "pg_loss": loss,
      "clip_frac": frac(high_BxT | low_BxT | dual_BxT),
      "clip_frac_high": frac(high_BxT),
      "clip_frac_low": frac(low_BxT),
      "dual_clip_frac": frac(dual_BxT),
      "approx_kl": masked_mean(jax.lax.stop_gradient((ratio_BxT - 1.0) - log_ratio_BxT), m_BxT),
      "ratio_mean": masked_mean(jax.lax.stop_gradient(ratio_BxT), m_BxT),
      "ratio_min": jax.lax.stop_gradient(ratio_min),
      "ratio_max": jax.lax.stop_gradient(ratio_max),
  }
  return loss, metrics


def value_loss(values_BxT: jax.Array, old_values_BxT: jax.Array, returns_BxT: jax.Array,
               mask_BxT: jax.Array, *, clip: float | None = None,
               aggregation: str = "token_mean", normalizer: jax.Array | float | None = None
               ) -> tuple[jax.Array, Metrics]:
  """PPO value loss with optional value clipping.

  Per token l = 0.5 (V - R)^2 without clipping, and with clip c
    l = 0.5 max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2),
  the pessimistic clipped value objective of the PPO reference implementation (baselines
  ppo2; Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients", Sec. 3). The
  0.5 factor makes the unclipped gradient V - R; scale the value coefficient accordingly when
  comparing with implementations that omit it.

  Args:
    values_BxT: [B, T] current value predictions (differentiated).
    old_values_BxT: [B, T] values at rollout time (no gradient).
    returns_BxT: [B, T] regression targets, e.g. GAE advantages + old values (no gradient).
    mask_BxT: [B, T] trained tokens.
    clip: c > 0, or None for the unclipped loss.
    aggregation, normalizer: as in `aggregate`.

  Returns:
    (loss, metrics): "vf_loss", "vf_clip_frac" (share of tokens where the clipped term is
    strictly larger, so the gradient is 0), "value_mean".
  """
  chex.assert_rank([values_BxT, old_values_BxT, returns_BxT, mask_BxT], 2)
  chex.assert_equal_shape([values_BxT, old_values_BxT, returns_BxT, mask_BxT])
  m_BxT = jnp.asarray(mask_BxT, jnp.float32)
  v_BxT = jnp.asarray(values_BxT, jnp.float32)
  old_BxT = jax.lax.stop_gradient(jnp.asarray(old_values_BxT, jnp.float32))
  ret_BxT = jax.lax.stop_gradient(jnp.asarray(returns_BxT, jnp.float32))
  err_BxT = jnp.square(v_BxT - ret_BxT)
  clipped_frac = jnp.zeros(())
  if clip is not None:
    v_clipped_BxT = old_BxT + jnp.clip(v_BxT - old_BxT, -clip, clip)
    err_clipped_BxT = jnp.square(v_clipped_BxT - ret_BxT)
    clipped_frac = masked_mean((err_clipped_BxT > err_BxT).astype(jnp.float32), m_BxT)
    err_BxT = jnp.maximum(err_BxT, err_clipped_BxT)
  loss = aggregate(0.5 * err_BxT, m_BxT, aggregation, normalizer)
  return loss, {"vf_loss": loss, "vf_clip_frac": clipped_frac,
                "value_mean": masked_mean(jax.lax.stop_gradient(v_BxT), m_BxT)}


def _map_time_chunks(fn: Callable[..., jax.Array], chunk: int | None,
                     *xs_BxTxV: jax.Array) -> jax.Array:
  """fn([B, C, V] arrays) -> [B, C], applied to windows of C = chunk positions -> [B, T].

  Windows are `lax.map`ped over the time axis and rematerialised in the backward pass
  (`jax.checkpoint`), so only one window's [B, C, V] temporaries live at a time. The last
  window is shifted left to end at T (it may overlap the previous one; overlapping positions
  are read from the earlier window), so no padding copy of the inputs is made.
  """
  t_len = xs_BxTxV[0].shape[1]
  if chunk is None or chunk >= t_len:
    return fn(*xs_BxTxV)
  if chunk < 1:
    raise ValueError(f"chunk must be >= 1, got {chunk}")
  n = -(-t_len // chunk)
  starts = np.minimum(np.arange(n) * chunk, t_len - chunk)

  @jax.checkpoint
  def window(start):
    return fn(*(jax.lax.dynamic_slice_in_dim(x, start, chunk, axis=1) for x in xs_BxTxV))

  out_NxBxC = jax.lax.map(window, jnp.asarray(starts, jnp.int32))
  t = np.arange(t_len)
  which = np.minimum(t // chunk, n - 1)
  offset = t - starts[which]
  return out_NxBxC[which, :, offset].T


def token_entropy(logits_BxTxV: jax.Array, *, chunk: int | None = None) -> jax.Array:
  """Entropy H(softmax(logits_bt)) = logsumexp(z) - sum_v p_v z_v per position -> [B, T].

  Args:
    logits_BxTxV: [B, T, V] policy logits (any float dtype; computed in float32).
    chunk: positions per window (`exact_kl`); None = all at once.
  """
  chex.assert_rank(logits_BxTxV, 3)

  def entropy(z_BxCxV):
    z_BxCxV = z_BxCxV.astype(jnp.float32)
    logp_BxCxV = jax.nn.log_softmax(z_BxCxV, axis=-1)
    p_BxCxV = jnp.exp(logp_BxCxV)  # 0 * log 0 = 0 for -inf (filtered) logits
    return -jnp.sum(jnp.where(p_BxCxV > 0, p_BxCxV * logp_BxCxV, 0.0), axis=-1)

  return _map_time_chunks(entropy, chunk, logits_BxTxV)


def entropy_bonus(logits_BxTxV: jax.Array, mask_BxT: jax.Array, *,
                  aggregation: str = "token_mean", normalizer: jax.Array | float | None = None,
                  chunk: int | None = None) -> jax.Array:
  """Aggregated token entropy of the policy (a masked token mean by default).

  The entropy bonus of Mnih et al. 2016 ("Asynchronous Methods for Deep RL", Sec. 4) and PPO
  (Schulman et al. 2017, Eq. 9): the trainer adds -coef * entropy_bonus(...) to the loss.

  Args:
    logits_BxTxV: [B, T, V] policy logits, position t scoring token t+1.
    mask_BxT: [B, T] trained tokens.
    aggregation, normalizer: as in `aggregate`.
    chunk: time window of `token_entropy`.

  Returns:
    Scalar entropy in nats.
  """
  chex.assert_rank([logits_BxTxV, mask_BxT], [3, 2])
  chex.assert_equal_shape_prefix([logits_BxTxV, mask_BxT], 2)
  return aggregate(token_entropy(logits_BxTxV, chunk=chunk), mask_BxT, aggregation, normalizer)


def kl_estimator(logp_BxT: jax.Array, ref_logp_BxT: jax.Array, mask_BxT: jax.Array,
                 estimator: str) -> jax.Array:
  """Per-token sampled-token estimators of KL(pi || ref) (Schulman 2020, "Approximating KL
  Divergence", http://joschu.net/blog/kl-approx.html), for a ~ pi and x = log(pi(a)/ref(a)):
    k1 = x,   k2 = x^2 / 2,   k3 = exp(-x) - 1 + x = ref/pi - 1 - log(ref/pi).
  k1 and k3 are unbiased for KL(pi || ref) and k3 >= 0 (GRPO's estimator, DeepSeekMath Eq. 4);
  k2 is biased but low-variance. Gradients flow through logp only (ref is stop-gradiented).

  Args:
    logp_BxT: [B, T] current-policy log-probs of the sampled tokens.
    ref_logp_BxT: [B, T] reference-policy log-probs of the same tokens.
    mask_BxT: [B, T] tokens to keep; 0 (and zero gradient) elsewhere.
    estimator: "k1", "k2" or "k3".

  Returns:
    [B, T] float32 estimates.
  """
  x_BxT, m_BxT = _masked_log_ratio(logp_BxT, ref_logp_BxT, mask_BxT)
  if estimator == "k1":
    k_BxT = x_BxT
  elif estimator == "k2":
    k_BxT = 0.5 * jnp.square(x_BxT)
  elif estimator == "k3":
    k_BxT = jnp.expm1(-x_BxT) + x_BxT
  else:
    raise ValueError(f"estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")
  return k_BxT * m_BxT


def kl_in_reward(logp_BxT: jax.Array, ref_logp_BxT: jax.Array, mask_BxT: jax.Array, *,
                 coef: float, estimator: str = "k1") -> jax.Array:
  """Per-token KL penalty to SUBTRACT from the rewards (placement "in_reward"; no gradient).

  rewards_BxT - kl_in_reward(...) before computing returns or advantages, as in PPO-RLHF
  (Ouyang et al. 2022, "Training language models to follow instructions with human feedback",
  Eq. 2; Ziegler et al. 2019).

  Which gradient this placement follows on-policy: module docstring, "KL placement".

  Args:
    logp_BxT, ref_logp_BxT, mask_BxT: as in `kl_estimator` (the decision frame).
    coef: beta.
    estimator: "k1" (the standard choice), "k2" or "k3".

  Returns:
    [B, T] float32 beta * k, stop-gradiented, 0 off the mask.
  """
  return jax.lax.stop_gradient(coef * kl_estimator(logp_BxT, ref_logp_BxT, mask_BxT, estimator))


def kl_in_loss(logp_BxT: jax.Array, ref_logp_BxT: jax.Array, mask_BxT: jax.Array, *,
               coef: float, estimator: str = "k3", aggregation: str = "token_mean",
               normalizer: jax.Array | float | None = None) -> tuple[jax.Array, Metrics]:
  """KL penalty added to the loss (placement "in_loss"; GRPO, DeepSeekMath Eq. 3 with k3).

  Which gradient this placement follows on-policy: module docstring, "KL placement".

  Args:
    logp_BxT, ref_logp_BxT, mask_BxT: as in `kl_estimator` (the decision frame).
    coef: beta.
    estimator: "k1", "k2" or "k3" (GRPO's default; k2 follows grad KL(pi || ref)).
    aggregation, normalizer: as in `aggregate` (use the policy loss's, so beta is comparable).

  Returns:
    (coef * aggregated k, metrics): "kl_loss" and "kl" (masked token mean of k).
  """
  k_BxT = kl_estimator(logp_BxT, ref_logp_BxT, mask_BxT, estimator)
  loss = coef * aggregate(k_BxT, mask_BxT, aggregation, normalizer)
  return loss, {"kl_loss": loss,
                "kl": masked_mean(jax.lax.stop_gradient(k_BxT), jnp.asarray(mask_BxT, jnp.float32))}


def exact_kl(logits_BxTxV: jax.Array, ref_logits_BxTxV: jax.Array, mask_BxT: jax.Array, *,
             chunk: int | None = 128) -> jax.Array:
  """Exact full-vocabulary KL(pi || ref) per position, in time windows.

  KL_bt = sum_v p_v (log p_v - log q_v) with log p = z - logsumexp(z) (and q from the reference
  logits), computed `chunk` positions at a time (`lax.map` over windows of the time axis,
  rematerialised in the backward pass), so the [B, T, V] softmaxes are never all materialised.
  Gradients flow to `logits_BxTxV` only.

  Args:
    logits_BxTxV: [B, T, V] policy logits, position t scoring token t+1.
    ref_logits_BxTxV: [B, T, V] reference-policy logits (no gradient).
    mask_BxT: [B, T]; the KL is 0 off the mask.
    chunk: positions per window; None = all at once (the unchunked formula).

  Returns:
    [B, T] float32 KL in nats.
  """
  chex.assert_rank([logits_BxTxV, ref_logits_BxTxV, mask_BxT], [3, 3, 2])
  chex.assert_equal_shape([logits_BxTxV, ref_logits_BxTxV])
  chex.assert_equal_shape_prefix([logits_BxTxV, mask_BxT], 2)

  def kl(z_BxCxV, ref_BxCxV):
    logp_BxCxV = jax.nn.log_softmax(z_BxCxV.astype(jnp.float32), axis=-1)
    logq_BxCxV = jax.nn.log_softmax(ref_BxCxV.astype(jnp.float32), axis=-1)
    p_BxCxV = jnp.exp(logp_BxCxV)  # tokens pi excludes (-inf logits) add 0
    return jnp.sum(jnp.where(p_BxCxV > 0, p_BxCxV * (logp_BxCxV - logq_BxCxV), 0.0), axis=-1)

  kl_BxT = _map_time_chunks(kl, chunk, logits_BxTxV, jax.lax.stop_gradient(ref_logits_BxTxV))
  return jnp.where(jnp.asarray(mask_BxT) > 0, kl_BxT, 0.0)
