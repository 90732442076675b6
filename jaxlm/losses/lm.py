"""Language-model losses: behaviour cloning and next-token prediction on the RL batch, and the
dense next-token loss of plain SFT windows.

Model outputs at position t score token t+1 (jaxlm.data.batch). Both losses are masked means
normalised by the mask sum, so padding and observation tokens never dilute them.
"""

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxlm.data.batch import RLBatch
from jaxlm.rl.returns import decision_view


@flax.struct.dataclass
class LMOutputs:
  """Model outputs for BC / LM losses: logits_BxTxV[:, t] scores token t+1."""
  logits_BxTxV: jax.Array


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
  """sum(x * mask) / max(sum(mask), 1)."""
  chex.assert_equal_shape([x, mask])
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def token_nll(logits_TxV: jax.Array, targets_T: jax.Array) -> jax.Array:
  """Per-position negative log-likelihood -log softmax(logits_t)[target_t] -> [T]."""
  chex.assert_rank([logits_TxV, targets_T], [2, 1])
  logp_TxV = jax.nn.log_softmax(logits_TxV.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp_TxV, targets_T[:, None], axis=-1)[:, 0]


def gather_actions(x_BxTxV: jax.Array, actions_BxT: jax.Array) -> jax.Array:
  """x_BxTxV[b, t, actions_BxT[b, t]] as float32 -> [B,T]."""
  chex.assert_rank([x_BxTxV, actions_BxT], [3, 2])
  return jnp.take_along_axis(x_BxTxV.astype(jnp.float32), actions_BxT[..., None], axis=-1)[..., 0]


def batch_token_nll(logits_BxTxV: jax.Array, batch: RLBatch) -> jax.Array:
  """[B,T] NLL of the next token at every position (decision frame)."""
  chex.assert_rank(logits_BxTxV, 3)
  chex.assert_equal_shape_prefix([logits_BxTxV, batch.tokens], 2)
  return jax.vmap(token_nll)(logits_BxTxV, decision_view(batch).actions)


def bc_loss(outputs: LMOutputs, batch: RLBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Behaviour cloning (Pomerleau 1991): cross-entropy on the agent's tokens only."""
  nll_BxT = batch_token_nll(outputs.logits_BxTxV, batch)
  mask_BxT = decision_view(batch).trains
  loss = masked_mean(nll_BxT, mask_BxT)
  return loss, {"bc_loss": loss, "action_tokens": jnp.sum(mask_BxT)}


def lm_loss(outputs: LMOutputs, batch: RLBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Next-token cross-entropy on every attended token after the first (pretraining / SFT)."""
  nll_BxT = batch_token_nll(outputs.logits_BxTxV, batch)
  attn_BxT = jnp.asarray(batch.attention_mask, jnp.float32)
  mask_BxT = jnp.concatenate([attn_BxT[:, 1:], jnp.zeros_like(attn_BxT[:, :1])], axis=1)
  loss = masked_mean(nll_BxT, mask_BxT)
  return loss, {"lm_loss": loss, "tokens": jnp.sum(mask_BxT)}


def next_token_loss(logits_BxTxV: jax.Array, targets_BxT: jax.Array
                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean cross-entropy of every position's next token (dense windows, no mask; Shannon 1948).

  For SFT on a token stream cut into windows: `targets_BxT` is the input shifted by one.
  Metrics: accuracy of the argmax prediction.
  """
  nll_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
  accuracy = (logits_BxTxV.argmax(-1) == targets_BxT).mean()
  return nll_BxT.mean(), {"accuracy": accuracy}


def with_bc_term(loss: jax.Array, metrics: dict[str, jax.Array], logits_BxTxV: jax.Array | None,
                 batch: RLBatch, bc_weight: float) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Adds bc_weight * BC when logits are given; fills metrics "bc_loss" and "loss"."""
  if logits_BxTxV is None:
    if bc_weight:
      raise ValueError("bc_weight > 0 needs outputs.logits_BxTxV")
    return loss, {**metrics, "loss": loss}
  bc, _ = bc_loss(LMOutputs(logits_BxTxV), batch)
  loss = loss + bc_weight * bc
  return loss, {**metrics, "bc_loss": bc, "loss": loss}
