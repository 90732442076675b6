"""Implicit Language Q-Learning loss (Snell et al. 2022, "Offline RL for Natural Language
Generation with Implicit Language Q Learning", Sec. 4, Eqs. 1-5).

Per action token (decision frame of jaxlm.rl.returns; outputs at position t score token t+1):
  V loss   (Eq. 2): expectile_tau( stop_grad(min_i Qtarget_i(s_t, a_t)) - V(s_t) )
  Q loss   (Eq. 3): sum_i ( Q_i(s_t, a_t) - stop_grad(r_t + gamma (1 - done_t) V(s_next)) )^2
  CQL      (Eq. 5): sum_i [ logsumexp_a(Q_i(s_t, .) / T) - Q_i(s_t, a_t) / T ]
                    (cross-entropy of the Boltzmann distribution softmax(Q_i / T) on data tokens)
  BC/AWAC  : cross-entropy of the policy logits on action tokens (what ILQL's code and trlx call
             the AWAC term is this unweighted cross-entropy).
  loss = Q loss + V loss + cql_weight * CQL + bc_weight * BC.
s_next skips observation tokens (the next action token's state, or the row's bootstrap state).
Q, CQL and BC average over the trained action tokens (RLBatch.loss_mask). For chained windows
(jaxlm.data.batch) pass `bootstrap_v_B`, V of the next window at its first trained action: it
replaces V at the look-ahead action, where Q is never trained, and V is then trained on trained
actions only. Without it V is also trained on look-ahead actions, toward target Q there.
Gradients: Q loss trains only Q_i; V loss trains only V; target Q arrays get no gradient.
Each term is a masked mean over action tokens.

The three published variants use this one loss; they differ in the networks the algorithm
builds and in which outputs it passes (see `ILQL_VARIANTS`). Polyak averaging of the target
(alpha) happens in the train step, not here.
"""

import dataclasses

import chex
import flax.struct
import jax
import jax.numpy as jnp

from jaxlm.data.batch import RLBatch
from jaxlm.losses.lm import gather_actions, masked_mean, token_nll, with_bc_term
from jaxlm.rl.returns import decision_view, td_targets


@flax.struct.dataclass
class ILQLOutputs:
  """Model outputs; position t scores token t+1. Optional fields may be None.

  `jaxlm.models.ILQLHeads` returns the online fields (q1, q2, v); the algorithm adds the target
  heads (and policy logits) with `.replace` before calling the loss.

  Attributes:
    q1_BxTxV, q2_BxTxV: online Q heads over the vocabulary (q2 None = single Q).
    v_BxT: value head.
    target_q1_BxTxV, target_q2_BxTxV: Polyak target heads (target_q2 None = single Q); the
      loss needs target_q1.
    logits_BxTxV: policy logits for the BC/AWAC term (None when the policy is frozen).
  """
  q1_BxTxV: jax.Array
  v_BxT: jax.Array
  q2_BxTxV: jax.Array | None = None
  target_q1_BxTxV: jax.Array | None = None
  target_q2_BxTxV: jax.Array | None = None
  logits_BxTxV: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class ILQLVariant:
  """Which networks an ILQL algorithm builds (the loss is the same for all).

  Attributes:
    name: key in ILQL_VARIANTS.
    shared_trunk: Q/V heads sit on the policy LM's trunk (one transformer) instead of on a
      separate value transformer.
    target_trunk: the target network copies the trunk too (else only the Q heads are copied and
      target Q is computed on the online trunk's features, with stop-gradient).
    policy: "joint" (policy LM trained with bc_weight > 0 alongside the value nets), "shared"
      (LM head on the shared trunk, trained by the BC term) or "frozen" (a BC model trained
      beforehand; pass logits_BxTxV=None and bc_weight=0).
    bc_weight: the published BC/AWAC weight.
  """
  name: str
  shared_trunk: bool
  target_trunk: bool
  policy: str
  bc_weight: float


ILQL_VARIANTS = {
    # Snell et al.: value transformer (Q1, Q2, V heads) + full target copy; separate policy LM
    # trained jointly by BC. Decoding uses the policy LM's logits.
    "original": ILQLVariant("original", shared_trunk=False, target_trunk=True, policy="joint",
                            bc_weight=1.0),
    # trlx: one transformer with LM head and Q/V heads; target = copies of the Q heads only.
    "trlx": ILQLVariant("trlx", shared_trunk=True, target_trunk=False, policy="shared",
                        bc_weight=1.0),
    # LMRL-Gym: value transformer + target transformer; pi_beta is a frozen BC model.
    "lmrl_gym": ILQLVariant("lmrl_gym", shared_trunk=False, target_trunk=True, policy="frozen",
                            bc_weight=0.0),
}


def expectile_loss(u: jax.Array, tau: float) -> jax.Array:
  """|tau - 1(u < 0)| * u^2 (Kostrikov et al. 2021, IQL Eq. 2)."""
  return jnp.abs(tau - (u < 0).astype(u.dtype)) * jnp.square(u)


def cql_penalty(q_TxV: jax.Array, actions_T: jax.Array, temperature: float) -> jax.Array:
  """logsumexp(Q/T) - Q(a)/T per position -> [T] (ILQL Eq. 5)."""
  return token_nll(q_TxV.astype(jnp.float32) / temperature, actions_T)


def ilql_loss(outputs: ILQLOutputs, batch: RLBatch, *, gamma: float = 0.99, tau: float = 0.7,
              cql_weight: float = 0.1, cql_temperature: float = 1.0,
              bc_weight: float = 0.0, bootstrap_v_B: jax.Array | None = None
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """ILQL loss (module docstring); returns (scalar loss, metrics)."""
  if outputs.target_q1_BxTxV is None:
    raise ValueError("ilql_loss needs target Q heads (ILQLOutputs.target_q1_BxTxV): pass the "
                     "heads applied to the target params")
  chex.assert_rank([outputs.q1_BxTxV, outputs.target_q1_BxTxV, outputs.v_BxT], [3, 3, 2])
  chex.assert_equal_shape([outputs.q1_BxTxV, outputs.target_q1_BxTxV])
  chex.assert_equal_shape_prefix([outputs.q1_BxTxV, outputs.v_BxT, batch.tokens], 2)
  d = decision_view(batch)
  mask_BxT = d.trains  # Q, CQL: trained actions; V also on look-ahead actions (jaxlm.data.batch)
  qs = [q for q in (outputs.q1_BxTxV, outputs.q2_BxTxV) if q is not None]
  target_qs = [q for q in (outputs.target_q1_BxTxV, outputs.target_q2_BxTxV) if q is not None]
  qa = [gather_actions(q, d.actions) for q in qs]
  target_qa_BxT = jax.lax.stop_gradient(
      jnp.min(jnp.stack([gather_actions(q, d.actions) for q in target_qs]), 0))
  v_BxT = outputs.v_BxT.astype(jnp.float32)
  v_next_BxT, v_mask_BxT = v_BxT, d.is_action
  if bootstrap_v_B is not None:
    chex.assert_shape(bootstrap_v_B, v_BxT.shape[:1])
    lookahead_BxT = d.is_action * (1.0 - mask_BxT)
    v_next_BxT = jnp.where(lookahead_BxT > 0, bootstrap_v_B[:, None].astype(jnp.float32), v_BxT)
    v_mask_BxT = mask_BxT

  td_BxT = jax.vmap(td_targets, in_axes=(0, 0, 0, 0, 0, None))(
      d.rewards, d.dones, d.is_action, d.is_bootstrap, jax.lax.stop_gradient(v_next_BxT), gamma)
  q_loss = sum(masked_mean(jnp.square(q - td_BxT), mask_BxT) for q in qa)
  v_loss = masked_mean(expectile_loss(target_qa_BxT - v_BxT, tau), v_mask_BxT)
  cql = sum(masked_mean(jax.vmap(cql_penalty, in_axes=(0, 0, None))(q, d.actions,
                                                                     cql_temperature), mask_BxT)
            for q in qs)
  loss = q_loss + v_loss + cql_weight * cql
  metrics = {"q_loss": q_loss, "v_loss": v_loss, "cql_loss": cql,
             "q1_mean": masked_mean(qa[0], mask_BxT), "v_mean": masked_mean(v_BxT, mask_BxT),
             "target_q_mean": masked_mean(target_qa_BxT, mask_BxT),
             "td_target_mean": masked_mean(td_BxT, mask_BxT),
             "advantage_mean": masked_mean(target_qa_BxT - v_BxT, mask_BxT)}
  return with_bc_term(loss, metrics, outputs.logits_BxTxV, batch, bc_weight)
