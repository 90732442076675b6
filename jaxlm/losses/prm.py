"""Process reward model loss (Wang et al. 2024, "Math-Shepherd"; Snell et al. 2024, App. D).

A PRM scores every reasoning step: its value head v_t at the last token of a step is fitted with
binary cross-entropy to a soft label y_t in [0, 1], the Monte-Carlo estimate of the chance that
the policy finishes correctly from that step (`jaxlm.search.labels`; Math-Shepherd Eq. 2, soft
estimation):

    L = -mean_steps [ y log sigmoid(v) + (1 - y) log(1 - sigmoid(v)) ].
"""

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.losses.lm import masked_mean

__all__ = ["PRMBatch", "prm_loss"]


@flax.struct.dataclass
class PRMBatch:
  """Rows of tokens with soft value labels at step ends.

  Attributes:
    tokens: [B, T] int32, right-padded.
    attention_mask: [B, T] float32.
    label_mask: [B, T] float32, 1 at the last token of each labelled step.
    labels: [B, T] float32 in [0, 1], the Monte-Carlo value of the prefix ending there.
  """
  tokens: np.ndarray
  attention_mask: np.ndarray
  label_mask: np.ndarray
  labels: np.ndarray


def prm_loss(logits_BxT: jax.Array, batch: PRMBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Binary cross-entropy to soft labels at labelled positions (Wang et al. 2024, Eq. 2).

  Args:
    logits_BxT: the value head's pre-sigmoid output at every position.
    batch: labels and the mask of labelled step ends.

  Returns:
    (loss, {"prm_bce": loss, "prm_abs_err": mean |sigmoid(v) - y|}).
  """
  chex.assert_equal_shape([logits_BxT, batch.labels, batch.label_mask])
  y_BxT = batch.labels.astype(jnp.float32)
  bce_BxT = -(y_BxT * jax.nn.log_sigmoid(logits_BxT)
              + (1.0 - y_BxT) * jax.nn.log_sigmoid(-logits_BxT))
  loss = masked_mean(bce_BxT, batch.label_mask)
  err = masked_mean(jnp.abs(jax.nn.sigmoid(logits_BxT) - y_BxT), batch.label_mask)
  return loss, {"prm_bce": loss, "prm_abs_err": err}
