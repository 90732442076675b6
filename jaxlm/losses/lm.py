"""Language-model losses: behaviour cloning and next-token prediction on the RL batch, and the
dense next-token loss of plain SFT windows.

Model outputs at position t score token t+1 (jaxlm.data.batch). Both losses are masked means
normalised by the mask sum, so padding and observation tokens never dilute them.

Outputs come either as logits [B, T, V] or, for the fast path, as the final hidden states and
the output matrix (`Transformer(..., with_logits=False)` and `models.transformer.output_matrix`):
then the projection and the cross-entropy run fused and chunked (`jaxlm.losses.xent`), never
materialising [B, T, V], with the same value and gradients to float32 rounding.
"""

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxlm.data.batch import RLBatch
from jaxlm.losses import xent
from jaxlm.rl.returns import decision_view


@flax.struct.dataclass
class LMOutputs:
  """Model outputs for BC / LM losses: position t scores token t+1.

  Give either `logits_BxTxV`, or `hidden_BxTxD` and `w_VxD` (logits = hidden @ w.T; the fused
  path of `jaxlm.losses.xent`).
  """
  logits_BxTxV: jax.Array | None = None
  hidden_BxTxD: jax.Array | None = None
  w_VxD: jax.Array | None = None


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


def fused_masked_nll(hidden_BxTxD: jax.Array, w_VxD: jax.Array, targets_BxT: jax.Array,
                     mask_BxT: jax.Array, *, chunk_size: int = xent.DEFAULT_CHUNK
                     ) -> tuple[jax.Array, jax.Array]:
  """masked_mean of the next-token NLL (Shannon 1948) from hidden states, fused and chunked.

  Equals `masked_mean(token NLL of hidden @ w_VxD.T, mask_BxT)` (`xent.weighted_nll` with
  weights mask / max(sum(mask), 1), gradient formed in the forward pass).

  Returns:
    (loss scalar, argmax_BxT int32 predictions).
  """
  chex.assert_rank([hidden_BxTxD, targets_BxT, mask_BxT], [3, 2, 2])
  chex.assert_equal_shape([targets_BxT, mask_BxT])
  chex.assert_equal_shape_prefix([hidden_BxTxD, targets_BxT], 2)
  mask_BxT = jnp.asarray(mask_BxT, jnp.float32)
  n = targets_BxT.size
  weights_N = (mask_BxT / jnp.maximum(jnp.sum(mask_BxT), 1.0)).reshape(n)
  loss, _, argmax_N = xent.weighted_nll(hidden_BxTxD.reshape(n, -1), w_VxD,
                                        targets_BxT.reshape(n), weights_N,
                                        chunk_size=chunk_size)
  return loss, argmax_N.reshape(targets_BxT.shape)


def _masked_nll(outputs: LMOutputs, batch: RLBatch, mask_BxT: jax.Array) -> jax.Array:
  """Masked-mean next-token NLL from logits, or fused from (hidden, w) when logits are None."""
  if outputs.logits_BxTxV is not None:
    return masked_mean(batch_token_nll(outputs.logits_BxTxV, batch), mask_BxT)
  if outputs.hidden_BxTxD is None or outputs.w_VxD is None:
    raise ValueError("LMOutputs needs logits_BxTxV, or both hidden_BxTxD and w_VxD")
  return fused_masked_nll(outputs.hidden_BxTxD, outputs.w_VxD, decision_view(batch).actions,
                          mask_BxT)[0]


def bc_loss(outputs: LMOutputs, batch: RLBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Behaviour cloning (Pomerleau 1991): cross-entropy on the agent's tokens only."""
  mask_BxT = decision_view(batch).trains
  loss = _masked_nll(outputs, batch, mask_BxT)
  return loss, {"bc_loss": loss, "action_tokens": jnp.sum(mask_BxT)}


def lm_loss(outputs: LMOutputs, batch: RLBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Next-token cross-entropy on every attended token after the first (pretraining / SFT)."""
  attn_BxT = jnp.asarray(batch.attention_mask, jnp.float32)
  mask_BxT = jnp.concatenate([attn_BxT[:, 1:], jnp.zeros_like(attn_BxT[:, :1])], axis=1)
  loss = _masked_nll(outputs, batch, mask_BxT)
  return loss, {"lm_loss": loss, "tokens": jnp.sum(mask_BxT)}


def next_token_loss(logits_BxTxV: jax.Array, targets_BxT: jax.Array
                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean cross-entropy of every position's next token (dense windows, no mask; Shannon 1948).

  For SFT on a token stream cut into windows: `targets_BxT` is the input shifted by one.
  Metrics: accuracy of the argmax prediction. `fused_next_token_loss` is the same loss from
  hidden states without [B, T, V] logits.
  """
  nll_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
  accuracy = (logits_BxTxV.argmax(-1) == targets_BxT).mean()
  return nll_BxT.mean(), {"accuracy": accuracy}


def fused_next_token_loss(hidden_BxTxD: jax.Array, w_VxD: jax.Array, targets_BxT: jax.Array, *,
                          chunk_size: int = xent.DEFAULT_CHUNK
                          ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`next_token_loss` with logits = hidden_BxTxD @ w_VxD.T, fused and chunked (xent)."""
  loss, argmax_BxT = fused_masked_nll(hidden_BxTxD, w_VxD, targets_BxT,
                                      jnp.ones(targets_BxT.shape, jnp.float32),
                                      chunk_size=chunk_size)
  return loss, {"accuracy": (argmax_BxT == targets_BxT).mean()}


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
