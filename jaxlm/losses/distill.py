"""Context distillation (Snell, Klein & Zhong 2022, "Learning by Distilling Context"): the loss,
and the index arithmetic that lines a teacher row up with its student row.

The teacher is a frozen copy of the model that reads [c; x; y] (context c, input x, answer y);
the student is the trained model and reads [x; y]. Both score the same answer tokens, at
different positions. `strip_context` maps every student position to the teacher position holding
the same token, so per-position teacher quantities (logits, masks) can be gathered into the
student's frame; `context_distill_loss` is then a masked mean of per-position KL divergences.

Positions follow `jaxlm.data.batch`: the model output at position t scores token t + 1. A
student position s and the teacher position `teacher_index_BxT[b, s]` hold the same token and
have read the same x-and-y prefix (plus c, for the teacher), so their outputs score the same
next token: the frames agree position by position, not only token by token.
"""

from __future__ import annotations

import chex
import flax.struct
import jax
import jax.numpy as jnp

from jaxlm.losses.lm import masked_mean

PADDING_SIDES = ("right", "left")


def token_kl(student_logits_TxV: jax.Array, teacher_logits_TxV: jax.Array) -> jax.Array:
  """KL(teacher || student) over the full vocabulary at each position -> [T] (nats).

  KL_t = sum_v p_t(v) (log p_t(v) - log q_t(v)), p = softmax(teacher), q = softmax(student).
  Vocabulary entries the teacher rules out (p = 0, e.g. -inf logits) contribute 0.
  """
  chex.assert_rank([student_logits_TxV, teacher_logits_TxV], 2)
  chex.assert_equal_shape([student_logits_TxV, teacher_logits_TxV])
  logq_TxV = jax.nn.log_softmax(student_logits_TxV.astype(jnp.float32), axis=-1)
  logp_TxV = jax.nn.log_softmax(teacher_logits_TxV.astype(jnp.float32), axis=-1)
  p_TxV = jnp.exp(logp_TxV)
  return jnp.sum(jnp.where(p_TxV > 0, p_TxV * (logp_TxV - logq_TxV), 0.0), axis=-1)


def context_distill_loss(student_logits_BxTxV: jax.Array, teacher_logits_BxTxV: jax.Array,
                         mask_BxT: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Token-level context-distillation loss (Snell et al. 2022, Sec. 2, the distillation
  objective), in the student's frame:

      L(theta) = sum_{b,t} m_bt KL( P_teacher(. | c, x, y_<t) || P_theta(. | x, y_<t) )
                 / sum_{b,t} m_bt,

  the paper's KL( P_theta0(y | [c; x]) || P_theta(y | x) ) decomposed over the answer tokens
  along the teacher's own answer y, with the teacher P_theta0 a frozen copy (no gradient).

  Direction: forward KL(teacher || student), as in knowledge distillation (Hinton et al. 2015).
  Its gradient in the student logits is softmax(student) - softmax(teacher) at each position,
  i.e. cross-entropy with the teacher's full distribution as a soft target: it is minimised
  when the student puts mass everywhere the teacher does (mass-covering), and it needs no samples
  from the student, so the sequence y can be the teacher's own answer fixed in advance. The
  reverse KL(student || teacher) would need the student's samples to be an unbiased objective
  on whole sequences (on-policy distillation) and is mode-seeking.

  Args:
    student_logits_BxTxV: student logits on [x; y] rows; position t scores token t + 1.
    teacher_logits_BxTxV: teacher logits already gathered into the student frame
      (`Alignment.gather`); gradients are stopped here.
    mask_BxT: 1 at the positions whose next token is an answer token (decision frame).

  Returns:
    (loss, metrics): loss is the masked mean KL in nats; metrics hold "kl", "agreement" (the
    student's argmax equals the teacher's, masked mean) and "answer_tokens" (mask sum).
  """
  chex.assert_rank([student_logits_BxTxV, teacher_logits_BxTxV, mask_BxT], [3, 3, 2])
  chex.assert_equal_shape([student_logits_BxTxV, teacher_logits_BxTxV])
  chex.assert_equal_shape_prefix([student_logits_BxTxV, mask_BxT], 2)
  teacher_BxTxV = jax.lax.stop_gradient(teacher_logits_BxTxV)
  mask_BxT = jnp.asarray(mask_BxT, jnp.float32)
  kl_BxT = jax.vmap(token_kl)(student_logits_BxTxV, teacher_BxTxV)
  loss = masked_mean(kl_BxT, mask_BxT)
  agree_BxT = student_logits_BxTxV.argmax(-1) == teacher_BxTxV.argmax(-1)
  return loss, {"kl": loss, "agreement": masked_mean(agree_BxT.astype(jnp.float32), mask_BxT),
                "answer_tokens": jnp.sum(mask_BxT)}


@flax.struct.dataclass
class Alignment:
  """A teacher row [c; x; y] without its context, and where each student token came from.

  Attributes:
    tokens_BxT: student rows [x; y], padded on the same side as the teacher rows.
    mask_BxT: int32, 1 on the student's real tokens.
    teacher_index_BxT: int32, the teacher position holding student token (b, s); a valid index
      (clipped into [0, T)) also at padding, where `mask_BxT` is 0.
  """
  tokens_BxT: jax.Array
  mask_BxT: jax.Array
  teacher_index_BxT: jax.Array

  def gather(self, teacher_x_BxT: jax.Array) -> jax.Array:
    """Per-position teacher values [B, T, ...] (logits, masks) -> the student frame [B, T, ...];
    values at student padding are whatever the clipped index reads (mask them)."""
    chex.assert_equal_shape_prefix([teacher_x_BxT, self.teacher_index_BxT], 2)
    index = self.teacher_index_BxT.reshape(
        self.teacher_index_BxT.shape + (1,) * (teacher_x_BxT.ndim - 2))
    return jnp.take_along_axis(teacher_x_BxT, index, axis=1)

  def decision_mask(self, answer_tokens_BxT: jax.Array) -> jax.Array:
    """Teacher-frame 1s on answer tokens -> float32 [B, T] student positions whose NEXT token is
    an answer token (the positions whose outputs score the answer: the distillation mask)."""
    answer_BxT = self.gather(jnp.asarray(answer_tokens_BxT, jnp.float32)) * self.mask_BxT
    return jnp.concatenate([answer_BxT[:, 1:], jnp.zeros_like(answer_BxT[:, :1])], axis=1)


def strip_context(tokens_BxT: jax.Array, mask_BxT: jax.Array, context_lengths_B: jax.Array, *,
                  padding: str = "right", pad_id: int = 0) -> Alignment:
  """Removes the first `context_lengths_B[b]` real tokens of each row (the context c).

  Each row's real tokens are one contiguous span: at the start ("right" padding) or at the end
  ("left" padding). With n_b real tokens and context length c_b:

  * right padding: student token s is teacher token s + c_b, real for s < n_b - c_b;
  * left padding: the span keeps its end, so student token s is teacher token s, real for
    s >= T - n_b + c_b (the context becomes padding).

  The model derives positions from the mask, so in both cases the student reads [x; y] at
  positions 0, 1, ... exactly as an unpadded [x; y] row.

  Args:
    tokens_BxT: teacher rows [c; x; y].
    mask_BxT: 1 on real tokens (a prefix of each row for "right", a suffix for "left").
    context_lengths_B: int, 0 <= c_b <= n_b.
    padding: "right" or "left".
    pad_id: written at the student's padding.

  Returns:
    Alignment.

  Raises:
    ValueError: unknown `padding`; with concrete inputs also a mask that is not one contiguous
      span on the `padding` side, or a context longer than its row.
  """
  if padding not in PADDING_SIDES:
    raise ValueError(f"strip_context: padding={padding!r}; expected one of {PADDING_SIDES}")
  chex.assert_rank([tokens_BxT, mask_BxT, context_lengths_B], [2, 2, 1])
  chex.assert_equal_shape([tokens_BxT, mask_BxT])
  chex.assert_equal_shape_prefix([tokens_BxT, context_lengths_B], 1)
  t_len = tokens_BxT.shape[1]
  real_BxT = jnp.asarray(mask_BxT) > 0
  n_B = real_BxT.sum(-1).astype(jnp.int32)
  c_B = jnp.asarray(context_lengths_B, jnp.int32)
  _check_spans(real_BxT, c_B, n_B, padding)
  s_T = jnp.arange(t_len, dtype=jnp.int32)
  if padding == "right":
    index_BxT = jnp.minimum(s_T[None, :] + c_B[:, None], t_len - 1)
    keep_BxT = s_T[None, :] < (n_B - c_B)[:, None]
  else:
    index_BxT = jnp.broadcast_to(s_T[None, :], tokens_BxT.shape)
    keep_BxT = s_T[None, :] >= (t_len - n_B + c_B)[:, None]
  student_BxT = jnp.where(keep_BxT, jnp.take_along_axis(tokens_BxT, index_BxT, axis=1), pad_id)
  return Alignment(student_BxT.astype(jnp.asarray(tokens_BxT).dtype),
                   keep_BxT.astype(jnp.int32), index_BxT)


def _check_spans(real_BxT, c_B, n_B, padding: str) -> None:
  """ValueErrors for concrete masks that are not one span on the padding side, or c_b > n_b."""
  if any(isinstance(x, jax.core.Tracer) for x in (real_BxT, c_B)):
    return
  t_len = real_BxT.shape[1]
  s_T = jnp.arange(t_len)
  if padding == "right":
    expected_BxT = s_T[None, :] < n_B[:, None]
  else:
    expected_BxT = s_T[None, :] >= (t_len - n_B)[:, None]
  bad_B = (real_BxT != expected_BxT).any(-1)
  if bool(bad_B.any()):
    raise ValueError(f"strip_context: rows {jnp.flatnonzero(bad_B).tolist()} of mask_BxT are "
                     f"not {padding}-padded (one span of real tokens)")
  over_B = (c_B < 0) | (c_B > n_B)
  if bool(over_B.any()):
    raise ValueError(f"strip_context: context_lengths_B {c_B[over_B].tolist()} at rows "
                     f"{jnp.flatnonzero(over_B).tolist()} are outside [0, real tokens "
                     f"{n_B[over_B].tolist()}]")
