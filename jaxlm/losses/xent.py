"""Softmax cross-entropy fused with the output projection, chunked over tokens.

A language model's last layer maps each final hidden state h_n in R^D to logits z_n = W h_n in
R^V (W is the [V, D] output matrix: the token embedding when tied, the transposed lm_head
otherwise) and pays the negative log-likelihood of the next token y_n (Shannon 1948; Bengio et
al. 2003, Eq. 1; the language-model objective of Radford et al. 2019, Eq. 1):

    nll_n = logsumexp(z_n) - z_n[y_n],        z_n = W h_n.                            (1)

Its gradients are, with p_n = softmax(z_n) and e_y the one-hot row of y_n,

    d nll_n / d z_n = p_n - e_{y_n},   d/dh_n = W^T (p_n - e_{y_n}),
    d/dW = sum_n (p_n - e_{y_n}) h_n^T.                                                 (2)

The plain path materialises z as [N, V] float32 (for GPT-2's V = 50257 that is 200 MB per 1024
tokens), then log-softmax and its gradient at the same size. Here the N tokens are cut into
chunks of C and a `jax.lax.scan` visits one chunk at a time, so only [C, V] is ever live:

- `token_nll` (per-token NLL, any downstream weighting): the forward computes z_c, its
  logsumexp and the target logit and keeps only (h, lse); the backward recomputes z_c once per
  chunk, forms (p - e_y) * g from the saved lse and accumulates dW and dh by Eq. 2. That is one
  projection matmul more than the plain path (4 instead of 3), never a full recompute.
- `weighted_nll` (the scalar sum_n a_n nll_n with fixed, non-differentiated weights a_n: masked
  means, the LM / SFT / BC losses): the cotangent of a scalar is one number g, so Eq. 2 is
  evaluated in the forward pass with a_n folded in and the backward only scales it by g. Three
  matmuls, the same as the plain path, and no recompute (the approach of the fused linear
  cross-entropy of Hsu et al. 2024, "Liger Kernel"; Wijmans et al. 2025, "Cut your losses in
  large-vocabulary language models", recompute in the backward like `token_nll`).

Both return the per-token argmax as well (the accuracy metrics), also chunked.

- `token_logprob_entropy` (policy-gradient losses): the log-probability of each token and the
  entropy of each position's distribution, for logits z_n = s W h_n (s = 1 / temperature),
  both differentiable. With logp_n = log softmax(z_n) and H_n = -sum_v p_nv logp_nv,

      d logp_n[y_n] / d z_n = e_{y_n} - p_n,    d H_n / d z_n = -p_n * (logp_n + H_n),    (3)

  so the backward, as `token_nll`'s, recomputes each chunk's logits once from the saved
  logsumexp and entropy and combines both cotangents before the two matmuls of Eq. 2.
"""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp

# Tokens per chunk. For GPT-2's V = 50257 a [256, V] f32 chunk is 51 MB (vs 206 MB for 1024
# tokens at once); measured fwd+bwd of 1024 x 384 x 50257 on 2 loaded cores, CPU-s: plain 2.18,
# weighted_nll chunk 128: 2.50, 256: 2.22, 512: 2.20, 1024: 2.18; token_nll chunk 256: 2.82.
DEFAULT_CHUNK = 256


def _check(hidden_NxD: jax.Array, w_VxD: jax.Array, targets_N: jax.Array,
           chunk_size: int) -> None:
  chex.assert_rank([hidden_NxD, w_VxD, targets_N], [2, 2, 1])
  if hidden_NxD.shape[0] != targets_N.shape[0]:
    raise ValueError(f"targets_N has {targets_N.shape[0]} tokens but hidden_NxD has "
                     f"{hidden_NxD.shape[0]}")
  if hidden_NxD.shape[1] != w_VxD.shape[1]:
    raise ValueError(f"w_VxD has width {w_VxD.shape[1]} but hidden_NxD has {hidden_NxD.shape[1]}")
  if not jnp.issubdtype(targets_N.dtype, jnp.integer):
    raise ValueError(f"targets_N must be integer token ids, got {targets_N.dtype}")
  if chunk_size < 1:
    raise ValueError(f"chunk_size={chunk_size} must be >= 1")


def _chunked(x: jax.Array, chunk: int) -> jax.Array:
  """[N, ...] -> [K, C', ...]: K = ceil(N / chunk) equal chunks of C' = ceil(N / K) <= chunk
  tokens (the least padding), zero-padded at the end."""
  n = x.shape[0]
  k = max(math.ceil(n / chunk), 1)
  c = max(math.ceil(n / k), 1)
  x = jnp.pad(x, [(0, k * c - n)] + [(0, 0)] * (x.ndim - 1))
  return x.reshape(k, c, *x.shape[1:])


def _unchunked(x_KxC: jax.Array, n: int) -> jax.Array:
  return x_KxC.reshape(-1, *x_KxC.shape[2:])[:n]


def _logits(h_CxD: jax.Array, w_VxD: jax.Array) -> jax.Array:
  """z = h W^T in float32: [C, V] (Eq. 1)."""
  return jnp.einsum("cd,vd->cv", h_CxD, w_VxD.astype(h_CxD.dtype),
                    preferred_element_type=jnp.float32)


def _stats(logits_CxV: jax.Array, targets_C: jax.Array):
  """(lse_C, nll_C, argmax_C) of one chunk's logits."""
  lse_C = jax.nn.logsumexp(logits_CxV, axis=-1)
  target_C = jnp.take_along_axis(logits_CxV, targets_C[:, None], axis=-1)[:, 0]
  return lse_C, lse_C - target_C, jnp.argmax(logits_CxV, axis=-1).astype(jnp.int32)


def _dlogits(logits_CxV: jax.Array, lse_C: jax.Array, targets_C: jax.Array,
             scale_C: jax.Array) -> jax.Array:
  """(softmax(z) - onehot(y)) * scale, row by row (Eq. 2)."""
  p_CxV = jnp.exp(logits_CxV - lse_C[:, None])
  hit_CxV = jax.lax.broadcasted_iota(jnp.int32, p_CxV.shape, 1) == targets_C[:, None]
  return (jnp.where(hit_CxV, p_CxV - 1.0, p_CxV)) * scale_C[:, None]


def _grads(h_CxD, w_VxD, dz_CxV):
  """(dh_CxD, dW_VxD) from dlogits (Eq. 2), float32 accumulation."""
  dh_CxD = jnp.einsum("cv,vd->cd", dz_CxV.astype(w_VxD.dtype), w_VxD,
                      preferred_element_type=jnp.float32)
  dw_VxD = jnp.einsum("cv,cd->vd", dz_CxV.astype(h_CxD.dtype), h_CxD,
                      preferred_element_type=jnp.float32)
  return dh_CxD, dw_VxD


def _forward_stats(hidden_NxD, w_VxD, targets_N, chunk):
  """Per-token (lse_N, nll_N, argmax_N), one [C, V] chunk at a time."""
  def body(_, xs):
    h_CxD, t_C = xs
    return None, _stats(_logits(h_CxD, w_VxD), t_C)
  _, out = jax.lax.scan(body, None, (_chunked(hidden_NxD, chunk), _chunked(targets_N, chunk)))
  return tuple(_unchunked(x, hidden_NxD.shape[0]) for x in out)


# ----------------------------------------------------------------------------- per-token NLL.

@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _token_nll(hidden_NxD, w_VxD, targets_N, chunk):
  _, nll_N, argmax_N = _forward_stats(hidden_NxD, w_VxD, targets_N, chunk)
  return nll_N, argmax_N


def _token_nll_fwd(hidden_NxD, w_VxD, targets_N, chunk):
  lse_N, nll_N, argmax_N = _forward_stats(hidden_NxD, w_VxD, targets_N, chunk)
  return (nll_N, argmax_N), (hidden_NxD, w_VxD, targets_N, lse_N)


def _token_nll_bwd(chunk, residuals, cotangents):
  hidden_NxD, w_VxD, targets_N, lse_N = residuals
  g_N = cotangents[0].astype(jnp.float32)

  def body(dw_VxD, xs):
    h_CxD, t_C, lse_C, g_C = xs
    dz_CxV = _dlogits(_logits(h_CxD, w_VxD), lse_C, t_C, g_C)
    dh_CxD, dw_chunk_VxD = _grads(h_CxD, w_VxD, dz_CxV)
    return dw_VxD + dw_chunk_VxD, dh_CxD

  xs = tuple(_chunked(x, chunk) for x in (hidden_NxD, targets_N, lse_N, g_N))
  dw_VxD, dh_KxCxD = jax.lax.scan(body, jnp.zeros(w_VxD.shape, jnp.float32), xs)
  dh_NxD = _unchunked(dh_KxCxD, hidden_NxD.shape[0])
  return dh_NxD.astype(hidden_NxD.dtype), dw_VxD.astype(w_VxD.dtype), None


_token_nll.defvjp(_token_nll_fwd, _token_nll_bwd)


def token_nll(hidden_NxD: jax.Array, w_VxD: jax.Array, targets_N: jax.Array, *,
              chunk_size: int = DEFAULT_CHUNK) -> tuple[jax.Array, jax.Array]:
  """Per-token NLL of `targets_N` under softmax(hidden W^T) without [N, V] logits (Eq. 1).

  Differentiable in `hidden_NxD` and `w_VxD` (the backward recomputes each chunk's logits once
  from the saved logsumexp, Eq. 2); any weighting of the result downstream is allowed.

  Args:
    hidden_NxD: final (normalised) hidden states of N tokens.
    w_VxD: output matrix, logits = hidden @ w.T (tied: the token embedding; untied: lm_head.T).
    targets_N: int token ids in [0, V).
    chunk_size: most tokens per chunk (any N: the chunks are made equal, the last one
      zero-padded).

  Returns:
    (nll_N float32, argmax_N int32: the highest-scoring token, not differentiable).
  """
  _check(hidden_NxD, w_VxD, targets_N, chunk_size)
  return _token_nll(hidden_NxD, w_VxD, targets_N, chunk_size)


# ------------------------------------------------------- weighted sum, gradient in the forward.

@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _weighted(hidden_NxD, w_VxD, targets_N, weights_N, chunk):
  _, nll_N, argmax_N = _forward_stats(hidden_NxD, w_VxD, targets_N, chunk)
  return jnp.sum(weights_N * nll_N), nll_N, argmax_N


def _weighted_fwd(hidden_NxD, w_VxD, targets_N, weights_N, chunk):
  """Forward that also evaluates Eq. 2 for the weighted sum (the cotangent is one scalar)."""
  def body(dw_VxD, xs):
    h_CxD, t_C, a_C = xs
    logits_CxV = _logits(h_CxD, w_VxD)
    lse_C, nll_C, argmax_C = _stats(logits_CxV, t_C)
    dh_CxD, dw_chunk_VxD = _grads(h_CxD, w_VxD, _dlogits(logits_CxV, lse_C, t_C, a_C))
    return dw_VxD + dw_chunk_VxD, (nll_C, argmax_C, dh_CxD)

  n = hidden_NxD.shape[0]
  xs = (_chunked(hidden_NxD, chunk), _chunked(targets_N, chunk),
        _chunked(weights_N.astype(jnp.float32), chunk))
  dw_VxD, outs = jax.lax.scan(body, jnp.zeros(w_VxD.shape, jnp.float32), xs)
  nll_N, argmax_N, dh_NxD = (_unchunked(x, n) for x in outs)
  loss = jnp.sum(weights_N * nll_N)
  return (loss, nll_N, argmax_N), (dh_NxD.astype(hidden_NxD.dtype), dw_VxD.astype(w_VxD.dtype))


def _weighted_bwd(chunk, residuals, cotangents):
  del chunk
  dh_NxD, dw_VxD = residuals
  g = cotangents[0]  # nll_N and argmax_N leave the wrapper under stop_gradient.
  return (g * dh_NxD).astype(dh_NxD.dtype), (g * dw_VxD).astype(dw_VxD.dtype), None, None


_weighted.defvjp(_weighted_fwd, _weighted_bwd)


def weighted_nll(hidden_NxD: jax.Array, w_VxD: jax.Array, targets_N: jax.Array,
                 weights_N: jax.Array, *, chunk_size: int = DEFAULT_CHUNK
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """sum_n weights_n * nll_n (Eq. 1) with its gradient computed in the forward pass.

  The weights are treated as constants (no gradient), e.g. mask / mask.sum() for a masked mean.
  The per-token NLL and argmax come back for metrics only: they carry no gradient (use
  `token_nll` when the per-token values feed a differentiated expression).

  Args:
    hidden_NxD, w_VxD, targets_N, chunk_size: as in `token_nll`.
    weights_N: float weight of each token's NLL (0 drops it).

  Returns:
    (loss scalar float32, nll_N float32 (stop_gradient), argmax_N int32).
  """
  _check(hidden_NxD, w_VxD, targets_N, chunk_size)
  chex.assert_shape(weights_N, targets_N.shape)
  loss, nll_N, argmax_N = _weighted(hidden_NxD, w_VxD, targets_N,
                                    jax.lax.stop_gradient(weights_N), chunk_size)
  return loss, jax.lax.stop_gradient(nll_N), argmax_N


# ----------------------------------------------- per-token log-prob and entropy (policy losses).

def _lp_stats(h_CxD, w_VxD, t_C, scale):
  """(lse_C, logp_C, entropy_C) of one chunk at logits z = scale * h W^T."""
  z_CxV = _logits(h_CxD, w_VxD) * scale
  lse_C, nll_C, _ = _stats(z_CxV, t_C)
  entropy_C = lse_C - jnp.sum(jnp.exp(z_CxV - lse_C[:, None]) * z_CxV, axis=-1)
  return lse_C, -nll_C, entropy_C


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _logprob_entropy(hidden_NxD, w_VxD, targets_N, scale, chunk):
  return _logprob_entropy_fwd(hidden_NxD, w_VxD, targets_N, scale, chunk)[0]


def _logprob_entropy_fwd(hidden_NxD, w_VxD, targets_N, scale, chunk):
  def body(_, xs):
    h_CxD, t_C = xs
    return None, _lp_stats(h_CxD, w_VxD, t_C, scale)

  _, outs = jax.lax.scan(body, None, (_chunked(hidden_NxD, chunk), _chunked(targets_N, chunk)))
  lse_N, logp_N, entropy_N = (_unchunked(x, hidden_NxD.shape[0]) for x in outs)
  return (logp_N, entropy_N), (hidden_NxD, w_VxD, targets_N, lse_N, entropy_N)


def _logprob_entropy_bwd(scale, chunk, residuals, cotangents):
  hidden_NxD, w_VxD, targets_N, lse_N, entropy_N = residuals
  g_logp_N, g_ent_N = (c.astype(jnp.float32) for c in cotangents)

  def body(dw_VxD, xs):
    h_CxD, t_C, lse_C, ent_C, g_lp_C, g_ent_C = xs
    z_CxV = _logits(h_CxD, w_VxD) * scale
    logp_CxV = z_CxV - lse_C[:, None]
    dz_CxV = (-_dlogits(z_CxV, lse_C, t_C, g_lp_C)  # Eq. 3: the log-prob's part is Eq. 2's
              - g_ent_C[:, None] * jnp.exp(logp_CxV) * (logp_CxV + ent_C[:, None]))
    dh_CxD, dw_chunk_VxD = _grads(h_CxD, w_VxD, dz_CxV * scale)
    return dw_VxD + dw_chunk_VxD, dh_CxD

  xs = tuple(_chunked(x, chunk) for x in (hidden_NxD, targets_N, lse_N, entropy_N, g_logp_N,
                                          g_ent_N))
  dw_VxD, dh_KxCxD = jax.lax.scan(body, jnp.zeros(w_VxD.shape, jnp.float32), xs)
  dh_NxD = _unchunked(dh_KxCxD, hidden_NxD.shape[0])
  return dh_NxD.astype(hidden_NxD.dtype), dw_VxD.astype(w_VxD.dtype), None


_logprob_entropy.defvjp(_logprob_entropy_fwd, _logprob_entropy_bwd)


def token_logprob_entropy(hidden_NxD: jax.Array, w_VxD: jax.Array, targets_N: jax.Array, *,
                          temperature: float = 1.0, chunk_size: int = DEFAULT_CHUNK
                          ) -> tuple[jax.Array, jax.Array]:
  """Per-token log-prob of `targets_N` and entropy under softmax(hidden W^T / temperature),
  without [N, V] logits; both differentiable in `hidden_NxD` and `w_VxD` (Eq. 3).

  Args:
    hidden_NxD: final hidden states [..., D] (any leading shape, e.g. [B, T, D]).
    w_VxD, chunk_size: as in `token_nll`.
    targets_N: int token ids, the leading shape of `hidden_NxD`.
    temperature: the sampling temperature the policy's distribution is taken at (> 0).

  Returns:
    (logp, entropy in nats), float32, each of the leading shape.
  """
  lead = hidden_NxD.shape[:-1]
  if targets_N.shape != lead:
    raise ValueError(f"targets shape {targets_N.shape} must be hidden's leading shape {lead}")
  hidden_NxD, targets_N = hidden_NxD.reshape(-1, hidden_NxD.shape[-1]), targets_N.reshape(-1)
  _check(hidden_NxD, w_VxD, targets_N, chunk_size)
  if not temperature > 0:
    raise ValueError(f"temperature={temperature} must be > 0")
  logp_N, entropy_N = _logprob_entropy(hidden_NxD, w_VxD, targets_N, 1.0 / float(temperature),
                                       chunk_size)
  return logp_N.reshape(lead), entropy_N.reshape(lead)
