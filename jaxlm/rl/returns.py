"""Token-level TD targets, Monte Carlo returns and GAE for language trajectories.

Every token the agent writes is an action (Snell et al. 2022, "Offline RL for Natural Language
Generation with Implicit Language Q Learning", Sec. 4): the discount gamma applies once per
action token, and observation tokens are skipped when looking for the next state.

Decision frame. The per-trajectory functions take arrays indexed by model output position t,
whose decision is token t+1 (see jaxlm.data.batch for the causal alignment):
  is_action_t    = action_mask[t+1]  (the token chosen at t was written by the agent)
  r_t, done_t    = rewards[t+1], dones[t+1]
  is_bootstrap_t = 1 at the last attended position: the state before the first token after the
                   row, used as "next state" by actions whose successor lies beyond the row.
The next state of an action decision t is the smallest k > t with is_action_k or
is_bootstrap_k. Outputs are 0 at non-action decisions. Each function is written for one
sequence with a reverse `lax.scan` over T; the `batch_*` wrappers vmap over B.
"""

import chex
import flax.struct
import jax
import jax.numpy as jnp

from jaxlm.data.batch import RLBatch


@flax.struct.dataclass
class DecisionView:
  """An RLBatch shifted into the decision frame; every field [B,T] (last column padding)."""
  actions: jax.Array       # int32 token chosen at position t (tokens[t+1])
  is_action: jax.Array     # float32
  rewards: jax.Array       # float32
  dones: jax.Array         # float32
  is_bootstrap: jax.Array  # float32
  trains: jax.Array        # float32, is_action restricted to RLBatch.loss_mask


def decision_view(batch: RLBatch) -> DecisionView:
  """Shifts the token-frame batch left by one (position t scores token t+1)."""
  chex.assert_rank(batch.tokens, 2)

  def nxt(x):
    return jnp.concatenate([x[:, 1:], jnp.zeros_like(x[:, :1])], axis=1)

  attn = jnp.asarray(batch.attention_mask, jnp.float32)
  return DecisionView(
      actions=nxt(jnp.asarray(batch.tokens, jnp.int32)),
      is_action=nxt(jnp.asarray(batch.action_mask, jnp.float32)),
      rewards=nxt(jnp.asarray(batch.rewards, jnp.float32)),
      dones=nxt(jnp.asarray(batch.dones, jnp.float32)),
      is_bootstrap=attn * (1.0 - nxt(attn)),
      trains=nxt(jnp.asarray(batch.action_mask if batch.loss_mask is None else batch.loss_mask,
                             jnp.float32)))


def _check(*arrays):
  chex.assert_rank(arrays, 1)
  chex.assert_equal_shape(arrays)


def td_targets(r_t: jax.Array, done_t: jax.Array, is_action_t: jax.Array,
               is_bootstrap_t: jax.Array, v_t: jax.Array, gamma: float) -> jax.Array:
  """One-step targets r_t + gamma * (1 - done_t) * V(next state) (ILQL Eq. 3's Q target).

  Args:
    r_t, done_t, is_action_t, is_bootstrap_t: [T] decision-frame arrays (module docstring).
    v_t: [T] state values at each position (callers stop gradients through it).
    gamma: discount per action token.

  Returns:
    [T] targets at action decisions, 0 elsewhere.
  """
  _check(r_t, done_t, is_action_t, is_bootstrap_t, v_t)

  def step(v_next, xs):
    r, d, a, b, v = xs
    target = a * (r + gamma * (1.0 - d) * v_next)
    return jnp.where((a > 0) | (b > 0), v, v_next), target

  _, out = jax.lax.scan(step, jnp.zeros((), v_t.dtype),
                        (r_t, done_t, is_action_t, is_bootstrap_t, v_t), reverse=True)
  return out


def mc_returns(r_t: jax.Array, done_t: jax.Array, is_action_t: jax.Array,
               is_bootstrap_t: jax.Array, bootstrap_value: jax.Array | float,
               gamma: float) -> jax.Array:
  """Return-to-go G_t = r_t + gamma * (1 - done_t) * G_next (Sutton & Barto Eq. 3.9).

  Args:
    r_t, done_t, is_action_t, is_bootstrap_t: [T] decision-frame arrays.
    bootstrap_value: scalar return-to-go after the row (RLBatch.bootstrap_returns).
    gamma: discount per action token.

  Returns:
    [T] returns at action decisions, 0 elsewhere.
  """
  _check(r_t, done_t, is_action_t, is_bootstrap_t)
  boot = jnp.asarray(bootstrap_value, jnp.float32)
  chex.assert_rank(boot, 0)

  def step(g_next, xs):
    r, d, a, b = xs
    g = r + gamma * (1.0 - d) * g_next
    return jnp.where(a > 0, g, jnp.where(b > 0, boot, g_next)), a * g

  _, out = jax.lax.scan(step, jnp.zeros((), jnp.float32),
                        (r_t, done_t, is_action_t, is_bootstrap_t), reverse=True)
  return out


def gae(r_t: jax.Array, done_t: jax.Array, is_action_t: jax.Array, is_bootstrap_t: jax.Array,
        v_t: jax.Array, gamma: float, lambda_: float) -> jax.Array:
  """Generalized advantage estimation over action tokens (Schulman et al. 2016, Eq. 16).

  delta_t = r_t + gamma (1 - done_t) V(next) - V(s_t);
  A_t = delta_t + gamma lambda (1 - done_t) A(next), with A = 0 at the bootstrap state.

  Returns:
    [T] advantages at action decisions, 0 elsewhere (add v_t for lambda-returns).
  """
  _check(r_t, done_t, is_action_t, is_bootstrap_t, v_t)

  def step(carry, xs):
    v_next, adv_next = carry
    r, d, a, b, v = xs
    adv = r + gamma * (1.0 - d) * v_next - v + gamma * lambda_ * (1.0 - d) * adv_next
    new = (jnp.where((a > 0) | (b > 0), v, v_next),
           jnp.where(a > 0, adv, jnp.where(b > 0, 0.0, adv_next)))
    return new, a * adv

  zero = jnp.zeros((), v_t.dtype)
  _, out = jax.lax.scan(step, (zero, zero), (r_t, done_t, is_action_t, is_bootstrap_t, v_t),
                        reverse=True)
  return out


def batch_td_targets(v_BxT: jax.Array, batch: RLBatch, *, gamma: float) -> jax.Array:
  """`td_targets` for a batch; v_BxT[:, t] is the model's value output at position t."""
  d = decision_view(batch)
  chex.assert_equal_shape([v_BxT, d.rewards])
  return jax.vmap(td_targets, in_axes=(0, 0, 0, 0, 0, None))(
      d.rewards, d.dones, d.is_action, d.is_bootstrap, v_BxT, gamma)


def batch_mc_returns(batch: RLBatch, *, gamma: float) -> jax.Array:
  """`mc_returns` for a batch, bootstrapping from `batch.bootstrap_returns` (None -> 0)."""
  d = decision_view(batch)
  boot = batch.bootstrap_returns
  boot_B = jnp.zeros(d.rewards.shape[:1]) if boot is None else jnp.asarray(boot, jnp.float32)
  return jax.vmap(mc_returns, in_axes=(0, 0, 0, 0, 0, None))(
      d.rewards, d.dones, d.is_action, d.is_bootstrap, boot_B, gamma)


def batch_gae(v_BxT: jax.Array, batch: RLBatch, *, gamma: float, lambda_: float) -> jax.Array:
  d = decision_view(batch)
  chex.assert_equal_shape([v_BxT, d.rewards])
  return jax.vmap(gae, in_axes=(0, 0, 0, 0, 0, None, None))(
      d.rewards, d.dones, d.is_action, d.is_bootstrap, v_BxT, gamma, lambda_)


def action_return_stats(batch: RLBatch, *, gamma: float) -> tuple[jax.Array, jax.Array]:
  """Mean and standard deviation of the return-to-go over trained action tokens: the offset
  and scale of value heads (`jaxlm.models.heads.MLPHead`)."""
  d = decision_view(batch)
  g_BxT = batch_mc_returns(batch, gamma=gamma)
  n = jnp.maximum(jnp.sum(d.trains), 1.0)
  mean = jnp.sum(g_BxT * d.trains) / n
  return mean, jnp.sqrt(jnp.sum(jnp.square(g_BxT - mean) * d.trains) / n)

