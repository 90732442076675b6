"""Value heads that read the transformer's final hidden states.

* `MLPHead`: two-layer MLP (D -> hidden -> out) used for every head below. Snell et al. (2022,
  ILQL, Sec. 5) use this shape for Q and V. Values are parametrised in units of the data:
  out = bias_init + scale * mlp(h), with bias_init the dataset's mean return and scale its
  standard deviation, so the MLP itself fits O(1) numbers (returns of tens, as in Maze, would
  otherwise need O(10) output weights, which Adam at lr 1e-3 reaches only after thousands of
  steps; the same reason value-based agents normalise returns, e.g. van Hasselt et al. 2016).
* `ILQLHeads`: double Q heads over the vocabulary and a scalar V head (Snell et al. 2022, Eq. 1-3).
  Target Q heads are the same module applied to a Polyak-averaged copy of the parameters, kept by
  the train step (`TrainState.target_params`), so there is no separate target class.
* Monte-Carlo value (LMRL-Gym "MC returns") and process reward models (Snell et al. 2024) are an
  `MLPHead` with `out=vocab_size` (per-action values) or `out=1` (a scalar per prefix).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm.losses.ilql import ILQLOutputs


class MLPHead(nn.Module):
  """hidden_BxTxD -> out_BxTxO (or out_BxT when `out == 1` and `squeeze`)."""
  out: int
  hidden_mult: int = 2
  bias_init: float = 0.0
  scale: float = 1.0
  out_axis: str | None = "vocab"
  squeeze: bool = False
  dtype: str = "float32"

  @nn.compact
  def __call__(self, hidden_BxTxD: jax.Array) -> jax.Array:
    d = hidden_BxTxD.shape[-1]
    init = nn.initializers.normal(0.02)
    h_BxTxH = nn.Dense(
        self.hidden_mult * d, dtype=self.dtype, name="hidden",
        kernel_init=nn.with_logical_partitioning(init, ("embed", "mlp")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
    )(hidden_BxTxD)
    out_BxTxO = nn.Dense(
        self.out, dtype=self.dtype, name="out",
        kernel_init=nn.with_logical_partitioning(init, ("mlp", self.out_axis)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (self.out_axis,)),
    )(jax.nn.relu(h_BxTxH))
    out_BxTxO = self.bias_init + self.scale * out_BxTxO.astype(jnp.float32)
    return out_BxTxO[..., 0] if self.squeeze else out_BxTxO


class ILQLHeads(nn.Module):
  """Double Q heads over the vocabulary plus a V head (Snell et al. 2022)."""
  vocab_size: int
  hidden_mult: int = 2
  init_value: float = 0.0  # Output offset of every head, e.g. the dataset's mean return.
  value_scale: float = 1.0  # Output scale of every head, e.g. the std of the data's returns.
  dtype: str = "float32"

  @nn.compact
  def __call__(self, hidden_BxTxD: jax.Array) -> ILQLOutputs:
    """Online q1, q2 [B, T, V] and v [B, T] as the loss's input type (no target fields)."""
    q = lambda name: MLPHead(self.vocab_size, self.hidden_mult, self.init_value,
                             self.value_scale, "vocab", dtype=self.dtype, name=name)(hidden_BxTxD)
    v_BxT = MLPHead(1, self.hidden_mult, self.init_value, self.value_scale, None, squeeze=True,
                    dtype=self.dtype, name="v")(hidden_BxTxD)
    return ILQLOutputs(q1_BxTxV=q("q1"), q2_BxTxV=q("q2"), v_BxT=v_BxT)
