"""CALM's auxiliary task loss: predict the dialogue's final action at every token.

Snell, Yang, Fu, Su, Levine (2022), "Context-Aware Language Modeling for Goal-Oriented Dialogue
Systems" (CALM), Sec. 4: besides the language-modelling loss, a classifier on the LM's hidden
state h_t predicts the final action of the dialogue at every position t, which up-weights the
gradient signal about the task (the action tokens are a small share of the LM loss). The action
is factored into a status (e.g. "book", "no flight") and a slot (which of K flights); only
some statuses use a slot. With independent softmaxes over statuses and slots,

    p(s, k | h_t) = softmax(z_t^status)_s * softmax(z_t^slot)_k     (s slotted)
    p(s | h_t)    = softmax(z_t^status)_s                           (s not slotted)

and, since several actions can be correct (e.g. flights tied at the lowest price), the loss is
the negative log of the total probability of the valid set V:

    L_aux = (1 / |M|) sum_{(b, t) in M} -log sum_{a in V_b} p(a | h_{b,t}),

a masked mean over the positions M that precede the final action. The flat action index lists,
status by status, K actions for a slotted status and one for an unslotted one (for the flight
task: book 1..K, then "no flight").
"""

from __future__ import annotations

from typing import Sequence

import chex
import jax
import jax.numpy as jnp

from jaxlm.losses.lm import masked_mean


def num_actions(slotted: Sequence[bool], num_slots: int) -> int:
  """Size of the flat action space: K per slotted status, 1 per unslotted one."""
  return sum(num_slots if s else 1 for s in slotted)


def _check_logits(status_logits_BxTxS, slot_logits_BxTxK, slotted) -> None:
  chex.assert_rank([status_logits_BxTxS, slot_logits_BxTxK], 3)
  chex.assert_equal_shape_prefix([status_logits_BxTxS, slot_logits_BxTxK], 2)
  if status_logits_BxTxS.shape[-1] != len(slotted):
    raise ValueError(f"status_logits_BxTxS has {status_logits_BxTxS.shape[-1]} statuses but "
                     f"slotted has {len(slotted)} entries")


def factored_action_logprobs(status_logits_BxTxS: jax.Array, slot_logits_BxTxK: jax.Array,
                             slotted: Sequence[bool]) -> jax.Array:
  """log p(a | h) over the flat action space [B, T, A] (module docstring)."""
  _check_logits(status_logits_BxTxS, slot_logits_BxTxK, slotted)
  logp_status_BxTxS = jax.nn.log_softmax(status_logits_BxTxS.astype(jnp.float32), axis=-1)
  logp_slot_BxTxK = jax.nn.log_softmax(slot_logits_BxTxK.astype(jnp.float32), axis=-1)
  parts = [logp_status_BxTxS[..., s:s + 1] + logp_slot_BxTxK if is_slotted
           else logp_status_BxTxS[..., s:s + 1] for s, is_slotted in enumerate(slotted)]
  return jnp.concatenate(parts, axis=-1)


def calm_aux_terms(status_logits_BxTxS: jax.Array, slot_logits_BxTxK: jax.Array,
                   valid_BxA: jax.Array, *, slotted: Sequence[bool]
                   ) -> tuple[jax.Array, jax.Array]:
  """Per position: (-log sum_{a valid} p(a | h), whether the most likely action is valid).

  Args:
    status_logits_BxTxS: status logits at every position.
    slot_logits_BxTxK: slot logits at every position.
    valid_BxA: 1 on the valid actions of each row (flat index, module docstring); a row with
      none (padding) gets NLL 0.
    slotted: per status, whether it takes a slot (static).

  Returns:
    (nll_BxT, correct_BxT) as float32.
  """
  _check_logits(status_logits_BxTxS, slot_logits_BxTxK, slotted)
  chex.assert_rank(valid_BxA, 2)
  b, a = status_logits_BxTxS.shape[0], num_actions(slotted, slot_logits_BxTxK.shape[-1])
  if valid_BxA.shape != (b, a):
    raise ValueError(f"valid_BxA has shape {valid_BxA.shape}; expected {(b, a)} (B rows, "
                     f"{a} actions for slotted={tuple(slotted)} and "
                     f"{slot_logits_BxTxK.shape[-1]} slots)")
  logp_BxTxA = factored_action_logprobs(status_logits_BxTxS, slot_logits_BxTxK, slotted)
  valid_BxA = jnp.asarray(valid_BxA, bool)
  # A row with no valid action (a padding row) counts every action as valid: NLL 0, finite
  # gradients (an all -inf logsumexp would put NaN into the backward pass).
  valid_Bx1xA = (valid_BxA | ~valid_BxA.any(-1, keepdims=True))[:, None, :]
  nll_BxT = -jax.nn.logsumexp(jnp.where(valid_Bx1xA, logp_BxTxA, -jnp.inf), axis=-1)
  best_BxT = jnp.argmax(logp_BxTxA, axis=-1)
  correct_BxT = jnp.take_along_axis(valid_Bx1xA[:, 0], best_BxT, axis=1).astype(jnp.float32)
  return nll_BxT, correct_BxT


def calm_aux_loss(status_logits_BxTxS: jax.Array, slot_logits_BxTxK: jax.Array,
                  valid_BxA: jax.Array, mask_BxT: jax.Array, *, slotted: Sequence[bool]
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """CALM's auxiliary loss L_aux (Snell et al. 2022, Sec. 4; module docstring).

  Args:
    status_logits_BxTxS, slot_logits_BxTxK, valid_BxA, slotted: as in `calm_aux_terms`.
    mask_BxT: 1 at the positions trained (those before the final action).

  Returns:
    (L_aux, {"aux_loss", "aux_accuracy"}): the masked means of the per-position NLL and of
    argmax-in-valid-set.
  """
  nll_BxT, correct_BxT = calm_aux_terms(status_logits_BxTxS, slot_logits_BxTxK, valid_BxA,
                                        slotted=slotted)
  mask_BxT = jnp.asarray(mask_BxT, jnp.float32)
  loss = masked_mean(nll_BxT, mask_BxT)
  return loss, {"aux_loss": loss, "aux_accuracy": masked_mean(correct_BxT, mask_BxT)}
