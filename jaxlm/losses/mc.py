"""Monte Carlo returns baseline (Abdulhai et al. 2023, "LMRL Gym", Sec. 5: "MC Returns").

A value head over the vocabulary, Q(s_t, a), is regressed to the return-to-go G_t of the data
token (gamma per action token, jaxlm.rl.returns.mc_returns); an optional state-value head V(s_t)
is regressed to the same target. At decoding time the policy is logits_BC + beta * Q
(`jaxlm.models.policy.perturb`, shared with ILQL; subtracting a per-state V would not change
the softmax). Optional BC term when the same trunk also carries the LM head.
"""

import chex
import flax.struct
import jax
import jax.numpy as jnp

from jaxlm.data.batch import RLBatch
from jaxlm.losses.lm import gather_actions, masked_mean, with_bc_term
from jaxlm.rl.returns import batch_mc_returns, decision_view

__all__ = ["MCOutputs", "mc_loss"]


@flax.struct.dataclass
class MCOutputs:
  """Model outputs; position t scores token t+1.

  Attributes:
    q_BxTxV: return-to-go head over the vocabulary.
    v_BxT: optional state-value head.
    logits_BxTxV: optional LM logits for a BC term (shared trunk).
  """
  q_BxTxV: jax.Array
  v_BxT: jax.Array | None = None
  logits_BxTxV: jax.Array | None = None


def mc_loss(outputs: MCOutputs, batch: RLBatch, *, gamma: float = 0.99,
            bc_weight: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean squared error of Q(s_t, a_t) (and V(s_t)) to G_t over action tokens, + bc_weight*BC.

  `batch.bootstrap_returns` must have been built with the same gamma (jaxlm.data.to_rl_batch).
  """
  chex.assert_rank(outputs.q_BxTxV, 3)
  chex.assert_equal_shape_prefix([outputs.q_BxTxV, batch.tokens], 2)
  d = decision_view(batch)
  mask_BxT = d.trains
  g_BxT = batch_mc_returns(batch, gamma=gamma)
  qa_BxT = gather_actions(outputs.q_BxTxV, d.actions)
  q_loss = masked_mean(jnp.square(qa_BxT - g_BxT), mask_BxT)
  loss = q_loss
  metrics = {"q_loss": q_loss, "q_mean": masked_mean(qa_BxT, mask_BxT),
             "return_mean": masked_mean(g_BxT, mask_BxT)}
  if outputs.v_BxT is not None:
    chex.assert_equal_shape([outputs.v_BxT, batch.tokens])
    v_loss = masked_mean(jnp.square(outputs.v_BxT.astype(jnp.float32) - g_BxT), mask_BxT)
    loss = loss + v_loss
    metrics["v_loss"] = v_loss
  return with_bc_term(loss, metrics, outputs.logits_BxTxV, batch, bc_weight)
