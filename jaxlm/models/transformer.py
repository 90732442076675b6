"""One decoder-only transformer for the GPT-2 and LLaMA families.

Family differences are configuration, never copies: the normalisation (LayerNorm or RMSNorm),
the positional scheme (learned table or rotary), the MLP (GELU or SwiGLU), tied or separate
input/output embeddings, grouped-query attention and which projections carry biases.

Every parameter carries logical axis names (`embed`, `mlp`, `heads`, `kv_heads`, `kv`, `vocab`,
`layers`); `jaxlm.sharding` maps them onto the (`data`, `fsdp`, `tensor`) mesh.

The model is padding-aware: positions come from the attention mask, so a left-padded row gives
the same logits at its real tokens as the unpadded row. A functional KV cache serves
generation: `init_cache` allocates it, and a call with `cache=` writes the new keys and values
at `cache_index` (a `dynamic_update_slice` on the carried buffers, in place) and attends over
every valid slot written so far. One buffer per k/v holds all layers: keys [L, B, Hkv, S, Dh]
and values transposed, [L, B, Hkv, Dh, S] (`_cache_write` says why), in both the unrolled and
the scanned layout.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any
# {"k": [L, B, Hkv, S, Dh], "v": [L, B, Hkv, Dh, S], "mask": [B, S], "index": []}
Cache = dict[str, jax.Array]

_NEG_INF = -1e30


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Architecture of the decoder.

  Attributes:
    vocab_size: number of token ids.
    d_model: residual stream width.
    n_layers: number of decoder blocks.
    n_heads: query heads.
    n_kv_heads: key/value heads (grouped-query attention); None means n_heads.
    head_dim: width of one head; None means d_model // n_heads.
    d_ff: hidden width of the MLP.
    max_len: longest sequence (size of the learned position table; cache default).
    norm: "layernorm" (GPT-2) or "rmsnorm" (LLaMA).
    norm_eps: epsilon of the normalisation.
    pos: "learned" (GPT-2 table) or "rope" (rotary, LLaMA).
    rope_theta: rotary base frequency.
    mlp: "gelu" (GPT-2, tanh approximation) or "swiglu" (LLaMA).
    tie_embeddings: output projection is the transposed token embedding.
    qkv_bias: biases on the query/key/value projections (GPT-2, Qwen2).
    proj_bias: biases on the attention output and MLP projections (GPT-2).
    dtype: compute dtype (activations, matmuls); softmax and norms run in float32.
    param_dtype: storage dtype of parameters.
    remat: rematerialise each block in the backward pass (activation memory for compute).
    query_chunk: without a KV cache (training, scoring) or when filling a cache of exactly
      T slots (generation's prefill), causal attention runs in blocks of this many queries,
      each against the keys up to its last position only, which skips the masked upper
      triangle (and keeps a block's probabilities small): a training step of 16 rows x 768
      tokens (2 layers, d=64) takes 0.71x (1 head) / 0.66x (4 heads) the time of one [T, T]
      block on CPU (`python -m benchmarks.train_bench --attention`). 0 = one block. Results
      equal up to float rounding.
    scan_layers: run the blocks with `nn.scan` (one compiled block; params stacked on `layers`).
  """
  vocab_size: int = 256
  d_model: int = 64
  n_layers: int = 2
  n_heads: int = 4
  n_kv_heads: int | None = None
  head_dim: int | None = None
  d_ff: int = 256
  max_len: int = 128
  norm: Literal["layernorm", "rmsnorm"] = "layernorm"
  norm_eps: float = 1e-5
  pos: Literal["learned", "rope"] = "learned"
  rope_theta: float = 10000.0
  mlp: Literal["gelu", "swiglu"] = "gelu"
  tie_embeddings: bool = True
  qkv_bias: bool = True
  proj_bias: bool = True
  dtype: str = "float32"
  param_dtype: str = "float32"
  remat: bool = False
  scan_layers: bool = False
  query_chunk: int = 128

  def __post_init__(self):
    for name, allowed in (("norm", ("layernorm", "rmsnorm")), ("pos", ("learned", "rope")),
                          ("mlp", ("gelu", "swiglu"))):
      if getattr(self, name) not in allowed:
        raise ValueError(f"TransformerConfig.{name}={getattr(self, name)!r}; expected one of "
                         f"{allowed}")
    if self.head_dim is None and self.d_model % self.n_heads:
      raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                       "set head_dim explicitly")
    if self.query_chunk < 0:
      raise ValueError(f"TransformerConfig.query_chunk={self.query_chunk} must be >= 0")
    if self.n_heads % self.kv_heads:
      raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.kv_heads}")

  @property
  def kv_heads(self) -> int:
    return self.n_kv_heads or self.n_heads

  @property
  def dh(self) -> int:
    return self.head_dim or self.d_model // self.n_heads

  def replace(self, **kw) -> "TransformerConfig":
    return dataclasses.replace(self, **kw)

  def num_params(self) -> int:
    """Parameter count (embeddings included)."""
    d, h, hkv, dh, f, v = (self.d_model, self.n_heads, self.kv_heads, self.dh, self.d_ff,
                           self.vocab_size)
    attn = d * dh * (h + 2 * hkv) + h * dh * d
    attn += (dh * (h + 2 * hkv) if self.qkv_bias else 0) + (d if self.proj_bias else 0)
    mlp = d * f * (3 if self.mlp == "swiglu" else 2)
    mlp += (f + d if self.proj_bias else 0) if self.mlp == "gelu" else 0
    norm = d * (2 if self.norm == "layernorm" else 1)
    block = attn + mlp + 2 * norm
    emb = v * d * (1 if self.tie_embeddings else 2)
    pos = self.max_len * d if self.pos == "learned" else 0
    return self.n_layers * block + emb + pos + norm

  def flops_per_token(self, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward = 3x forward), with attention."""
    non_emb = self.num_params() - self.vocab_size * self.d_model * (
        1 if self.tie_embeddings else 2) - (self.max_len * self.d_model
                                            if self.pos == "learned" else 0)
    matmul = 2 * (non_emb + self.vocab_size * self.d_model)
    attn = 2 * 2 * self.n_layers * seq_len * self.n_heads * self.dh  # QK^T and AV.
    return 3.0 * (matmul + attn)


def gpt2_config(**kw) -> TransformerConfig:
  """GPT-2 family defaults (override sizes with keywords)."""
  base = dict(norm="layernorm", norm_eps=1e-5, pos="learned", mlp="gelu", tie_embeddings=True,
              qkv_bias=True, proj_bias=True)
  return TransformerConfig(**{**base, **kw})


def llama_config(**kw) -> TransformerConfig:
  """LLaMA family defaults (override sizes with keywords)."""
  base = dict(norm="rmsnorm", norm_eps=1e-6, pos="rope", mlp="swiglu", tie_embeddings=False,
              qkv_bias=False, proj_bias=False)
  return TransformerConfig(**{**base, **kw})


@flax.struct.dataclass
class TransformerOutput:
  logits: jax.Array | None  # [B, T, V] float32 (None when called with with_logits=False)
  hidden: jax.Array  # [B, T, D] final normalised residual stream (value heads read this)
  cache: Cache | None = None


def positions_from_mask(attention_mask_BxT: jax.Array) -> jax.Array:
  """Position ids that ignore left padding: 0 at each row's first real token."""
  return jnp.maximum(jnp.cumsum(attention_mask_BxT.astype(jnp.int32), axis=-1) - 1, 0)


def _check_inputs(cfg: TransformerConfig, tokens_BxT, positions_BxT) -> None:
  """ValueErrors for inputs that would otherwise give NaN (out-of-range `jnp.take` reads).

  Lengths are static, so a sequence longer than the learned position table is caught under
  jit too; ids and positions are checked when concrete (outside jit; under jit the data's
  entry points check them, e.g. `RLBatch.validate(vocab_size)`).
  """
  learned = cfg.pos == "learned"
  if learned and positions_BxT is None and tokens_BxT.shape[1] > cfg.max_len:
    raise ValueError(f"Transformer: sequence length {tokens_BxT.shape[1]} exceeds the learned "
                     f"position table (max_len={cfg.max_len})")
  for name, x, bound in (("tokens_BxT", tokens_BxT, cfg.vocab_size),
                         ("positions_BxT", positions_BxT, cfg.max_len if learned else None)):
    if x is None or bound is None or isinstance(x, jax.core.Tracer):
      continue
    x = np.asarray(x)
    bad = (x < 0) | (x >= bound)
    if bad.any():
      b, t = np.argwhere(bad)[0]
      raise ValueError(f"Transformer: {name}[{b}, {t}] = {x[b, t]} is outside [0, {bound})")


def _init(scale: float, names: tuple[str | None, ...]):
  return nn.with_logical_partitioning(nn.initializers.normal(scale), names)


def _zeros(names: tuple[str | None, ...]):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def _ones(names: tuple[str | None, ...]):
  return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


class Norm(nn.Module):
  """LayerNorm or RMSNorm, computed in float32."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    pdt = jnp.dtype(cfg.param_dtype)
    x32 = x.astype(jnp.float32)
    scale = self.param("scale", _ones(("embed",)), (cfg.d_model,), pdt)
    if cfg.norm == "layernorm":
      bias = self.param("bias", _zeros(("embed",)), (cfg.d_model,), pdt)
      mean = x32.mean(-1, keepdims=True)
      var = jnp.square(x32 - mean).mean(-1, keepdims=True)
      y = (x32 - mean) * jax.lax.rsqrt(var + cfg.norm_eps) * scale + bias
    else:
      y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + cfg.norm_eps) * scale
    return y.astype(cfg.dtype)


def rope(x_BxTxHxD: jax.Array, positions_BxT: jax.Array, theta: float) -> jax.Array:
  """Rotary embedding in the half-split layout HF LLaMA checkpoints use (Su et al. 2021)."""
  d = x_BxTxHxD.shape[-1]
  inv_freq = 1.0 / theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d)
  angle_BxTxF = positions_BxT[..., None].astype(jnp.float32) * inv_freq
  cos = jnp.cos(angle_BxTxF)[:, :, None, :]
  sin = jnp.sin(angle_BxTxF)[:, :, None, :]
  x = x_BxTxHxD.astype(jnp.float32)
  x1, x2 = x[..., : d // 2], x[..., d // 2:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxTxHxD.dtype)


def _attend(q_BxTxGxRxK, k_BxGxSxK, v_BxGxSxK, kv_valid_BxS, offset, dtype):
  """Softmax attention of T queries at positions offset.. to the S keys at 0..S-1 (causal)."""
  t, s = q_BxTxGxRxK.shape[1], k_BxGxSxK.shape[2]
  logits_BxGxRxTxS = jnp.einsum("btgrk,bgsk->bgrts", q_BxTxGxRxK, k_BxGxSxK,
                                preferred_element_type=jnp.float32)
  logits_BxGxRxTxS /= jnp.sqrt(q_BxTxGxRxK.shape[-1])
  causal_TxS = jnp.arange(s)[None, :] <= (offset + jnp.arange(t))[:, None]
  allowed_BxTxS = causal_TxS[None] & kv_valid_BxS[:, None, :].astype(bool)
  logits_BxGxRxTxS = jnp.where(allowed_BxTxS[:, None, None], logits_BxGxRxTxS, _NEG_INF)
  probs_BxGxRxTxS = jax.nn.softmax(logits_BxGxRxTxS, axis=-1).astype(dtype)
  out_BxTxGxRxK = jnp.einsum("bgrts,bgsk->btgrk", probs_BxGxRxTxS, v_BxGxSxK.astype(dtype))
  return out_BxTxGxRxK, probs_BxGxRxTxS


def _cache_write(kv, layer, index, k_BxGxTxK, v_BxGxTxK):
  """(kv, k_BxGxSxK, v_BxGxKxS): the T new keys and values written at slot `index` of layer
  `layer` of the cache ([L, B, G, S, K] keys, [L, B, G, K, S] values), and that layer's keys
  and values.

  Values are cached transposed so that both products of a decode step (q @ keys^T and
  probs @ values) contract the minor axis of their cache: XLA on CPU then copies the layer's
  buffers once per step instead of transposing the values (the generation benchmark of the
  commit that made it: 1.7-2.3x tokens/s for a 2-layer d=64 model at 64-640 cached tokens).
  One buffer per layer (a tuple) was slower still: XLA copied the loop-carried buffers.
  """
  def put(buf, new, slot_axis):
    start = [layer, 0, 0, 0, 0]
    start[1 + slot_axis] = index
    full = jax.lax.dynamic_update_slice(buf, new[None].astype(buf.dtype), start)
    return full, full[layer]

  k, k_now = put(kv["k"], k_BxGxTxK, 2)
  v, v_now = put(kv["v"], v_BxGxTxK.swapaxes(2, 3), 3)
  return {"k": k, "v": v}, k_now, v_now


class Attention(nn.Module):
  """Multi-head / grouped-query causal self-attention with an optional KV cache."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x_BxTxD, positions_BxT, q_valid_BxT, kv, layer, cache_index, kv_valid_BxS):
    cfg = self.cfg
    h, hkv, dh, d = cfg.n_heads, cfg.kv_heads, cfg.dh, cfg.d_model
    dense = functools.partial(nn.DenseGeneral, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                              bias_init=_zeros(("heads", "kv")))
    q_BxTxHxK = dense((h, dh), use_bias=cfg.qkv_bias, name="q",
                      kernel_init=_init(0.02, ("embed", "heads", "kv")))(x_BxTxD)
    kv_dense = functools.partial(dense, (hkv, dh), use_bias=cfg.qkv_bias,
                                 kernel_init=_init(0.02, ("embed", "kv_heads", "kv")),
                                 bias_init=_zeros(("kv_heads", "kv")))
    k_BxTxGxK = kv_dense(name="k")(x_BxTxD)
    v_BxTxGxK = kv_dense(name="v")(x_BxTxD)
    if cfg.pos == "rope":
      q_BxTxHxK = rope(q_BxTxHxK, positions_BxT, cfg.rope_theta)
      k_BxTxGxK = rope(k_BxTxGxK, positions_BxT, cfg.rope_theta)

    t = x_BxTxD.shape[1]
    k_BxGxTxK, v_BxGxTxK = (a.transpose(0, 2, 1, 3) for a in (k_BxTxGxK, v_BxTxGxK))
    q_BxTxGxRxK = q_BxTxHxK.reshape(*q_BxTxHxK.shape[:2], hkv, h // hkv, dh)
    if kv is None:
      k_BxGxSxK, v_BxGxSxK, kv_valid_BxS, offset = k_BxGxTxK, v_BxGxTxK, q_valid_BxT, 0
    else:
      kv, k_BxGxSxK, v_BxGxKxS = _cache_write(kv, layer, cache_index, k_BxGxTxK, v_BxGxTxK)
      v_BxGxSxK, offset = v_BxGxKxS.swapaxes(2, 3), cache_index
    # Without a cache, or filling a cache of exactly t slots (a prefill), query i sees keys
    # 0..i only: blocks of `query_chunk` queries, each against the keys up to its last one.
    s = k_BxGxSxK.shape[2]
    blocked = bool(cfg.query_chunk) and s == t
    step = cfg.query_chunk if blocked else t
    blocks = []
    for i in range(0, t, step):
      e = i + step if blocked else s  # the keys block i can see
      blocks.append(_attend(q_BxTxGxRxK[:, i:i + step], k_BxGxSxK[:, :, :e],
                            v_BxGxSxK[:, :, :e], kv_valid_BxS[:, :e], offset + i, cfg.dtype))
    out_BxTxGxRxK = jnp.concatenate([out for out, _ in blocks], axis=1)
    if self.is_mutable_collection("intermediates"):
      # Read with `apply(..., mutable=["intermediates"])`: [B, G, R, T, S].
      probs = jnp.concatenate([jnp.pad(p, [(0, 0)] * 4 + [(0, s - p.shape[-1])])
                               for _, p in blocks], axis=3)
      self.sow("intermediates", "attention", probs)
    out_BxTxHxK = out_BxTxGxRxK.reshape(*out_BxTxGxRxK.shape[:2], h, dh)
    out_BxTxD = nn.DenseGeneral(d, axis=(-2, -1), use_bias=cfg.proj_bias, dtype=cfg.dtype,
                                param_dtype=cfg.param_dtype, name="o",
                                kernel_init=_init(0.02 / (2 * cfg.n_layers) ** 0.5,
                                                  ("heads", "kv", "embed")),
                                bias_init=_zeros(("embed",)))(out_BxTxHxK)
    return out_BxTxD, kv


class Mlp(nn.Module):
  """GELU (GPT-2) or SwiGLU (LLaMA) feed-forward block."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x_BxTxD):
    cfg = self.cfg
    dense = functools.partial(nn.Dense, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                              use_bias=cfg.proj_bias and cfg.mlp == "gelu")
    up = functools.partial(dense, cfg.d_ff, kernel_init=_init(0.02, ("embed", "mlp")),
                           bias_init=_zeros(("mlp",)))
    if cfg.mlp == "gelu":
      h_BxTxF = jax.nn.gelu(up(name="up")(x_BxTxD), approximate=True)
    else:
      h_BxTxF = jax.nn.silu(up(name="gate")(x_BxTxD)) * up(name="up")(x_BxTxD)
    return dense(cfg.d_model, name="down", bias_init=_zeros(("embed",)),
                 kernel_init=_init(0.02 / (2 * cfg.n_layers) ** 0.5, ("mlp", "embed")))(h_BxTxF)


class Block(nn.Module):
  """Pre-norm decoder block; fits `nn.scan`: ((x, cache kv), layer index, *broadcast)."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, carry, layer, positions_BxT, q_valid_BxT, cache_index, kv_valid_BxS):
    x_BxTxD, kv = carry
    attn, kv = Attention(self.cfg, name="attn")(
        Norm(self.cfg, name="ln1")(x_BxTxD), positions_BxT, q_valid_BxT, kv, layer, cache_index,
        kv_valid_BxS)
    x_BxTxD = x_BxTxD + attn
    x_BxTxD = x_BxTxD + Mlp(self.cfg, name="mlp")(Norm(self.cfg, name="ln2")(x_BxTxD))
    return (x_BxTxD, kv), None


class Transformer(nn.Module):
  """Decoder-only transformer: tokens -> (logits, final hidden states, updated cache).

  Call with `tokens_BxT` and optionally `attention_mask_BxT` (1 = real token; left padding
  allowed), `positions_BxT` (default: derived from the mask) and a `cache` from `init_cache`
  (generation: the new keys/values are written at `cache["index"]`).
  """
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, tokens_BxT, attention_mask_BxT=None, positions_BxT=None,
               cache: Cache | None = None, with_logits: bool = True) -> TransformerOutput:
    """`with_logits=False` skips the [B, T, V] output projection (logits=None): a loss fused
    with it reads `hidden` and `output_matrix(params, cfg)` instead (`jaxlm.losses.xent`)."""
    cfg = self.cfg
    _check_inputs(cfg, tokens_BxT, positions_BxT)
    if attention_mask_BxT is None:
      attention_mask_BxT = jnp.ones(tokens_BxT.shape, jnp.int32)
    if positions_BxT is None:
      positions_BxT = positions_from_mask(attention_mask_BxT)
    embed = nn.Embed(cfg.vocab_size, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                     embedding_init=_init(0.02, ("vocab", "embed")), name="embed")
    x_BxTxD = embed(tokens_BxT)
    if cfg.pos == "learned":
      x_BxTxD += nn.Embed(cfg.max_len, cfg.d_model, dtype=cfg.dtype,
                          param_dtype=cfg.param_dtype, name="pos_embed",
                          embedding_init=_init(0.01, (None, "embed")))(positions_BxT)

    q_valid_BxT = attention_mask_BxT.astype(bool)
    kv, cache_index, kv_valid_BxS = None, None, None
    if cache is not None:
      # The slots written now become valid keys for this and every later step.
      cache_index = cache["index"]
      kv = {"k": cache["k"], "v": cache["v"]}
      kv_valid_BxS = jax.lax.dynamic_update_slice_in_dim(
          cache["mask"], attention_mask_BxT.astype(cache["mask"].dtype), cache_index, axis=1)
    args = (positions_BxT, q_valid_BxT, cache_index, kv_valid_BxS)

    block = nn.remat(Block, prevent_cse=not cfg.scan_layers) if cfg.remat else Block
    if cfg.scan_layers:
      stack = nn.scan(block, variable_axes={"params": 0, "intermediates": 0},
                      split_rngs={"params": True},
                      in_axes=(0,) + (nn.broadcast,) * len(args), length=cfg.n_layers,
                      metadata_params={nn.PARTITION_NAME: "layers"})
      (x_BxTxD, kv), _ = stack(cfg, name="blocks")((x_BxTxD, kv), jnp.arange(cfg.n_layers),
                                                    *args)
    else:
      for i in range(cfg.n_layers):
        (x_BxTxD, kv), _ = block(cfg, name=f"block_{i}")((x_BxTxD, kv), i, *args)

    hidden_BxTxD = Norm(cfg, name="ln_f")(x_BxTxD)
    logits_BxTxV = None
    if cfg.tie_embeddings:
      if with_logits:
        logits_BxTxV = embed.attend(hidden_BxTxD)
    elif with_logits or self.is_initializing():  # The lm_head params exist either way.
      logits_BxTxV = nn.Dense(cfg.vocab_size, use_bias=False, dtype=cfg.dtype,
                              param_dtype=cfg.param_dtype, name="lm_head",
                              kernel_init=_init(0.02, ("embed", "vocab")))(hidden_BxTxD)
    new_cache = None
    if cache is not None:
      new_cache = {**kv, "mask": kv_valid_BxS, "index": cache_index + tokens_BxT.shape[1]}
    logits_BxTxV = logits_BxTxV.astype(jnp.float32) if with_logits else None
    return TransformerOutput(logits=logits_BxTxV, hidden=hidden_BxTxD, cache=new_cache)


def output_matrix(params: Any, cfg: TransformerConfig) -> jax.Array:
  """The [V, D] matrix W with logits = hidden @ W.T: the token embedding when tied, else the
  transposed lm_head kernel (differentiable: gradients flow back to the parameter). Params
  may still carry their `nn.Partitioned` boxes."""
  if cfg.tie_embeddings:
    return nn.unbox(params["embed"]["embedding"])
  return nn.unbox(params["lm_head"]["kernel"]).T


def cache_rows(cache: Cache, rows_R) -> Cache:
  """The cache of rows `rows_R` (indices, repeats allowed) of `cache`, in that order."""
  rows_R = jnp.asarray(rows_R, jnp.int32)
  return {"k": cache["k"][:, rows_R], "v": cache["v"][:, rows_R], "mask": cache["mask"][rows_R],
          "index": cache["index"]}


def init_cache(cfg: TransformerConfig, batch_size: int, max_len: int | None = None,
               dtype: Dtype | None = None) -> Cache:
  """An empty KV cache for `batch_size` rows of up to `max_len` tokens (`cfg.max_len` when None;
  0 is an empty cache, which `jaxlm.generate` grows to the prompt and decode lengths)."""
  s = cfg.max_len if max_len is None else max_len
  lead = (cfg.n_layers, batch_size, cfg.kv_heads)
  dt = jnp.dtype(dtype or cfg.dtype)
  return {"k": jnp.zeros(lead + (s, cfg.dh), dt), "v": jnp.zeros(lead + (cfg.dh, s), dt),
          "mask": jnp.zeros((batch_size, s), jnp.int32), "index": jnp.zeros((), jnp.int32)}
