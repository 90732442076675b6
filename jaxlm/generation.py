"""KV-cache generation: one jitted decode loop with sampling and logit processors.

`generate` continues a batch of left-padded prompts. Design:

* Prefill. The first P - 1 prompt columns go through the model in one call that only fills a
  KV cache of P - 1 slots (its logits are dead code, so XLA drops the [B, P, V] output
  projection); the cache is then padded with N empty slots, so the prefill's attention is
  P - 1 x P - 1, not P - 1 x (P - 1 + N). The decode loop then starts by feeding the last
  prompt column, so every step is the same T = 1 call
  `(token_B, position_B, cache) -> (logits_BxV, hidden_BxD, cache)`. Prompts must be left-padded
  (the last column is real for every row); row b's positions count its real tokens only, so a
  padded row generates exactly what it would alone.
* Continuation. With `return_cache` the output holds the cache (each row's tokens but its last:
  a token fed after its row finished stays a masked slot); `generate(cache=...)` continues
  rows from it (multi-turn decoding: the next prompt starts with that last token), prefilling
  only the new tokens, at positions that follow each row's cached ones.
* Decode. A `lax.while_loop` (not `scan`: it exits as soon as every row is done, by a stop token
  or its own length limit) over at most `max_new_tokens` steps. The cache holds
  P - 1 + max_new_tokens (more) slots and, unless returned, lives only inside the compiled
  call, so no donation is needed.
* Per step: raw logits -> `logit_processor(step_state, logits)` -> temperature -> top-k -> top-p
  -> sample (or argmax when `temperature == 0`). A finished row emits `pad_id` with log-prob 0.
* Greedy fast path. With `temperature == 0` (concrete) there is no sampling machinery: the
  token and its log-prob come from one max/argmax pass and one exp-sum pass (`argmax_logprob`).
  When, in addition, there is no processor and no `extra_outputs` and the model is a
  `Transformer` with tied embeddings, the step projects the final hidden state itself,
  vocabulary-major (`_ModuleApply.logits_VxB`: the same products, a faster dot on CPU),
  and the model's own [B, V] projection is dead code. A logit may differ from the general
  path's in the last bit (the order of its D-term sum, which depends on the CPU), so tokens are
  the same unless two logits tie to that bit, and the log-probs may differ in the last bit
  (also the order of the 50k-term sum). About half of a small GPT-2's decode step is that
  projection; benchmarks/generate_bench.py has the measured breakdown.
* Temperature: a scalar or one per row [B]. A row whose temperature is 0 decodes greedily
  (exactly the argmax of its processed logits, as with `temperature=0` for the whole batch). A
  concrete temperature < 0 or NaN is an error; a traced one (e.g. under an outer `jax.jit`)
  cannot be checked, so every row whose temperature is not > 0 (negative or NaN included) is
  clamped to greedy: the output is never NaN and never garbage.
* Two log-probs per token: `logprobs_BxN` under the raw model (temperature 1, no processor, no
  filtering: what an RL loss or a perplexity wants) and `processed_logprobs_BxN` under the
  distribution that was actually sampled from (after processor, temperature and top-k/top-p; for
  greedy decoding: after the processor only).
* Compilation. Shapes, sampling switches (greedy, top-k, whether top-p is on), the model and the
  static parts of processors are static; everything else (params, prompts, rng, temperature,
  top-p, stop tokens, per-row limits, array fields of processors, `aux`) is traced. Compiled
  loops are cached by `jax.jit`, so repeated calls with the same shapes and configuration do not
  retrace. Pass the same processor object (or an equal `flax.struct` processor) to hit the cache.
  Stop-token lists are padded to a power-of-two length for the same reason. `generate` may itself
  be called under an outer `jax.jit` (checks that need concrete values are then skipped).

Logit processors (`(StepState, logits_BxV) -> logits_BxV`, and the ones the library ships) live
in `jaxlm.processors`.
Policies that combine several networks per step, like the ILQL policy of Snell et al. (2022,
Sec. 4), `logits + beta * (Q - V)`, are not processors: they are a `model` of their own
(`jaxlm.models.policy.JointDecoder`, one KV cache per transformer) passed to `generate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models import transformer as tfm
from jaxlm.processors import Processor, StepState, as_pytree


@flax.struct.dataclass
class GenerationOutput:
  """Result of `generate` for B rows and N = max_new_tokens columns.

  Attributes:
    tokens_BxN: generated tokens; `pad_id` after a row finished.
    logprobs_BxN: log p(token) under the raw model (temperature 1, no processor); 0 after the end.
    processed_logprobs_BxN: log-prob under the distribution sampled from; 0 after the end.
    lengths_B: generated tokens per row (a stop token counts).
    done_B: the row ended on a stop token (False: cut by its length limit).
    extras: stacked `extra_outputs` ([B, N, ...] leaves) or None.
    cache: with `return_cache`, the KV cache holding each row's prompt and generated tokens
      except its last token (the one a continuation feeds first); else None.
  """
  tokens_BxN: jax.Array
  logprobs_BxN: jax.Array
  processed_logprobs_BxN: jax.Array
  lengths_B: jax.Array
  done_B: jax.Array
  extras: Any = None
  cache: Any = None


# ---------------------------------------------------------------------------------------------
# Sampling.


def top_k_filter(logits_BxV: jax.Array, k: int) -> jax.Array:
  """Keep the k largest logits per row (ties with the k-th are kept); others -> -inf."""
  kth_Bx1 = jax.lax.top_k(logits_BxV, k)[0][:, -1:]
  return jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)


def top_p_filter(logits_BxV: jax.Array, p: jax.Array) -> jax.Array:
  """Nucleus filter (Holtzman et al. 2020, Sec. 3.1): keep the smallest set of most likely
  tokens whose probability mass is >= p (ties at the cut are kept); others -> -inf."""
  sorted_BxV = -jnp.sort(-logits_BxV, axis=-1)
  probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
  mass_before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
  keep_BxV = mass_before_BxV < p  # The top token always has mass_before 0 and is kept.
  cutoff_Bx1 = jnp.min(jnp.where(keep_BxV, sorted_BxV, jnp.inf), axis=-1, keepdims=True)
  return jnp.where(logits_BxV < cutoff_Bx1, -jnp.inf, logits_BxV)


@dataclasses.dataclass(frozen=True)
class _StaticConfig:
  """Everything that fixes the compiled loop."""
  max_new_tokens: int
  greedy: bool
  top_k: int
  use_top_p: bool
  cache_dtype: Any
  return_cache: bool = False


def _take_B(logp_BxV, token_B):
  return jnp.take_along_axis(logp_BxV, token_B[:, None], axis=-1)[:, 0]


def sampling_logits(logits_xV: jax.Array, temperature, top_k: int = 0, top_p=None) -> jax.Array:
  """The logits of the distribution `generate` samples from: temperature, then top-k, then top-p.

  The one definition of the sampling distribution: the decode loop applies it to each step's
  (processed) logits, and an RL trainer applies it to teacher-forced logits [B, T, V], so its
  log-probs of the sampled tokens equal the sampler's `processed_logprobs_BxN`.

  Args:
    logits_xV: logits with any leading shape.
    temperature: > 0: a scalar (concrete or traced) or an array broadcasting against
      `logits_xV` (e.g. [B, 1], one per row).
    top_k: keep the k most likely tokens (0 = off; static).
    top_p: nucleus mass, or None for off.
  """
  shape = logits_xV.shape
  z_NxV = (logits_xV / temperature).reshape(-1, shape[-1])
  if top_k:
    z_NxV = top_k_filter(z_NxV, top_k)
  if top_p is not None:
    z_NxV = top_p_filter(z_NxV, top_p)
  return z_NxV.reshape(shape)


def argmax_logprob(logits: jax.Array, axis: int = -1) -> tuple[jax.Array, jax.Array]:
  """(argmax, log_softmax(logits)[argmax]) along `axis`, without a [.., V] log-softmax.

  XLA fuses the argmax and the max into one pass; then log p(argmax) = (max - max) -
  log(sum(exp(logits - max))), the arithmetic `jax.nn.log_softmax` does at that index, so the
  result is the same to the bit. The greedy decode step needs exactly these two numbers.
  """
  with jax.named_scope("argmax_logprob"):
    argmax = jnp.argmax(logits, axis=axis).astype(jnp.int32)
    max_ = jnp.max(logits, axis=axis)
    shifted = logits - jnp.expand_dims(max_, axis)
    return argmax, (max_ - max_) - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis))


def _choose(cfg: _StaticConfig, logits_BxV, temperature_B, top_p, rng):
  """Processed logits -> (token_B, the logits of the distribution the token was drawn from).

  The sampling path (`cfg.greedy` is False; a greedy loop uses `argmax_logprob`). Rows whose
  temperature is not > 0 (0, or a traced negative or NaN) take the argmax.
  """
  argmax_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  greedy_B = ~(temperature_B > 0)
  sampled_BxV = sampling_logits(logits_BxV, jnp.where(greedy_B, 1.0, temperature_B)[:, None],
                                cfg.top_k, top_p if cfg.use_top_p else None)
  token_B = jax.random.categorical(rng, sampled_BxV, axis=-1).astype(jnp.int32)
  return (jnp.where(greedy_B, argmax_B, token_B),
          jnp.where(greedy_B[:, None], logits_BxV, sampled_BxV))


# ---------------------------------------------------------------------------------------------
# The loop.


def _pad_to(x: jax.Array, like: jax.ShapeDtypeStruct) -> jax.Array:
  """`x` zero-padded at the end of every axis to the shape of `like`."""
  return jnp.pad(x, [(0, f - s) for s, f in zip(x.shape, like.shape)]) if x.ndim else x


def cache_mask(cache) -> jax.Array:
  """The [B, S] valid-slot mask of a KV cache pytree (the first leaf named "mask")."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(cache):
    if path and getattr(path[-1], "key", None) == "mask":
      return leaf
  raise ValueError("generate: the cache has no 'mask' leaf")


def _generate_impl(apply_fn, cache_fn, extra_fn, cfg: _StaticConfig, params, prompt_BxP,
                   mask_BxP, rng, temperature_B, top_p, stop_BxK, max_lengths_B, pad_id, processor,
                   aux, cache_in):
  b, p = prompt_BxP.shape
  n = cfg.max_new_tokens
  mask_BxP = mask_BxP.astype(jnp.int32)
  # A fresh call continues an empty cache: the prompt follows the tokens the cache holds.
  cache = cache_fn(b, 0, cfg.cache_dtype) if cache_in is None else cache_in
  held_BxS = cache_mask(cache)
  slots, prior_B = held_BxS.shape[1], held_BxS.sum(-1)
  prompt_lengths_B = prior_B + mask_BxP.sum(-1)
  sized = lambda c, s: jax.tree.map(_pad_to, c, jax.eval_shape(
      lambda: cache_fn(b, s, cfg.cache_dtype)))  # c grown to s slots, the new ones empty
  if p > 1:  # Fill P - 1 more slots with all but the last column (logits DCE'd), then grow
    # the cache by N empty slots: the prefill attends over P - 1 more keys, not P - 1 + N.
    cache = apply_fn(params, prompt_BxP[:, :-1], mask_BxP[:, :-1],
                     prior_B[:, None] + tfm.positions_from_mask(mask_BxP[:, :-1]),
                     sized(cache, slots + p - 1)).cache
  cache = sized(cache, slots + max(p - 1, 0) + n)

  def step_fn(token_B, position_B, valid_B, cache):
    # A token fed after its row finished is not context: its slot stays invalid, so the cache
    # holds each row's own tokens only (a continuation reads it).
    out = apply_fn(params, token_B[:, None], valid_B[:, None].astype(jnp.int32),
                   position_B[:, None], cache)
    return out.logits[:, 0], out.hidden[:, 0], out.cache

  logits_spec, hidden_spec, _ = jax.eval_shape(step_fn, prompt_BxP[:, -1], prompt_lengths_B,
                                               jnp.ones((b,), bool), cache)
  dummy_state = StepState(jnp.zeros((), jnp.int32), jnp.zeros((b, n), jnp.int32),
                          prompt_lengths_B, prompt_lengths_B,
                          jnp.zeros(hidden_spec.shape, hidden_spec.dtype),
                          jnp.zeros((b,), bool), rng, aux)
  extras = None
  if extra_fn is not None:
    spec = jax.eval_shape(extra_fn, dummy_state, jnp.zeros(logits_spec.shape, jnp.float32),
                          jnp.zeros((b,), jnp.int32))
    extras = jax.tree.map(lambda s: jnp.zeros((s.shape[0], n) + s.shape[1:], s.dtype), spec)

  carry = dict(
      step=jnp.zeros((), jnp.int32), cache=cache, token_B=prompt_BxP[:, -1].astype(jnp.int32),
      position_B=prompt_lengths_B - 1, tokens_BxN=jnp.full((b, n), pad_id, jnp.int32),
      logprobs_BxN=jnp.zeros((b, n), jnp.float32),
      processed_BxN=jnp.zeros((b, n), jnp.float32), lengths_B=jnp.zeros((b,), jnp.int32),
      finished_B=max_lengths_B <= 0, stopped_B=jnp.zeros((b,), bool), extras=extras)

  def cond(c):
    return (c["step"] < n) & ~jnp.all(c["finished_B"])

  # Plain greedy decoding of a `Transformer` projects the hidden state itself, vocabulary-major
  # (see `_ModuleApply.logits_VxB`); the model's own [B, V] projection is then dead code.
  vocab_major = (cfg.greedy and processor is None and extra_fn is None
                 and isinstance(apply_fn, _ModuleApply) and apply_fn.projects_vocab_major)

  def body(c):
    step = c["step"]
    logits_BxV, hidden_BxD, cache = step_fn(c["token_B"], c["position_B"], ~c["finished_B"],
                                            c["cache"])
    step_rng = jax.random.fold_in(rng, step)
    state = StepState(step, c["tokens_BxN"], c["position_B"], prompt_lengths_B, hidden_BxD,
                      c["finished_B"], jax.random.fold_in(step_rng, 1), aux)
    processed_BxV = logits_BxV if processor is None else processor(state, logits_BxV)
    live_B = ~c["finished_B"]
    if vocab_major:
      token_B, proc_lp_B = argmax_logprob(apply_fn.logits_VxB(params, hidden_BxD), axis=0)
      token_B = jnp.where(live_B, token_B, pad_id)
      raw_lp_B = proc_lp_B
    elif cfg.greedy:  # No sampling machinery: the argmax and its log-prob.
      token_B, proc_lp_B = argmax_logprob(processed_BxV)
      token_B = jnp.where(live_B, token_B, pad_id)
      raw_lp_B = proc_lp_B if processor is None else _take_B(
          jax.nn.log_softmax(logits_BxV), token_B)
    else:
      token_B, sampled_from_BxV = _choose(cfg, processed_BxV, temperature_B, top_p,
                                          jax.random.fold_in(step_rng, 0))
      token_B = jnp.where(live_B, token_B, pad_id)
      raw_lp_B = _take_B(jax.nn.log_softmax(logits_BxV), token_B)
      proc_lp_B = _take_B(jax.nn.log_softmax(sampled_from_BxV), token_B)
    # Finished rows write pad (tokens) or zeros (everything else) into column `step`.
    put = lambda buf, x: jax.lax.dynamic_update_slice_in_dim(buf, x[:, None], step, axis=1)
    put_live = lambda buf, x: put(buf, jnp.where(
        live_B.reshape((-1,) + (1,) * (x.ndim - 1)), x, jnp.zeros_like(x)))
    lengths_B = c["lengths_B"] + live_B
    stop_B = live_B & (stop_BxK == token_B[:, None]).any(-1)
    new = dict(
        step=step + 1, cache=cache, token_B=token_B, position_B=c["position_B"] + 1,
        tokens_BxN=put(c["tokens_BxN"], token_B),
        logprobs_BxN=put_live(c["logprobs_BxN"], raw_lp_B),
        processed_BxN=put_live(c["processed_BxN"], proc_lp_B),
        lengths_B=lengths_B, stopped_B=c["stopped_B"] | stop_B,
        finished_B=c["finished_B"] | stop_B | (lengths_B >= max_lengths_B), extras=None)
    if extra_fn is not None:
      new["extras"] = jax.tree.map(put_live, c["extras"], extra_fn(state, logits_BxV, token_B))
    return new

  c = jax.lax.while_loop(cond, body, carry)
  return GenerationOutput(c["tokens_BxN"], c["logprobs_BxN"], c["processed_BxN"],
                          c["lengths_B"], c["stopped_B"], c["extras"],
                          c["cache"] if cfg.return_cache else None)


_generate_jit = jax.jit(_generate_impl, static_argnums=(0, 1, 2, 3))


# ---------------------------------------------------------------------------------------------
# Model adapters (hashable, so that jit caches on them).


@dataclasses.dataclass(frozen=True)
class _ModuleApply:
  module: nn.Module

  def __call__(self, params, tokens_BxT, mask_BxT, positions_BxT, cache):
    return self.module.apply({"params": params}, tokens_BxT, attention_mask_BxT=mask_BxT,
                             positions_BxT=positions_BxT, cache=cache)

  @property
  def projects_vocab_major(self) -> bool:
    """A `Transformer` with tied embeddings (its logits are `embed.attend(hidden)`)."""
    module = self.module  # Exactly a Transformer: a subclass may compute other logits.
    return type(module) is tfm.Transformer and module.cfg.tie_embeddings

  def logits_VxB(self, params, hidden_BxD):
    """The tied output projection of one position, computed vocabulary-major.

    The same products as the model's `embed.attend`, operands cast to the compute dtype, summed
    in the order XLA's CPU dot picks for this layout (equal to the bit on some CPUs, a last-bit
    difference on others; tested within the reordering bound); XLA's CPU dot is ~25% faster with
    the [V, D] embedding as the left operand, and the reductions over V then run down the
    columns of a [V, B] array. (The untied `lm_head` swapped this way differs in the last bit,
    so untied models keep the model's projection.)
    """
    dt = jnp.dtype(self.module.cfg.dtype)
    with jax.named_scope("logits_VxB"):
      embedding_VxD = params["embed"]["embedding"].astype(dt)
      return jnp.dot(embedding_VxD, hidden_BxD.astype(dt).T).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class _CacheInit:
  config: tfm.TransformerConfig

  def __call__(self, batch_size, max_len, dtype):
    return tfm.init_cache(self.config, batch_size, max_len, dtype)


@dataclasses.dataclass(frozen=True)
class _OwnCacheInit:
  """The cache of a model that brings its own (`model.init_cache`), hashed by the model."""
  model: Any

  def __call__(self, batch_size, max_len, dtype):
    return self.model.init_cache(batch_size, max_len, dtype)


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _validate(config, prompt_BxP, mask_BxP, max_new_tokens, temperature, top_k, top_p):
  chex.assert_rank(prompt_BxP, 2)
  if tuple(mask_BxP.shape) != tuple(prompt_BxP.shape):
    raise ValueError(f"generate: prompt_mask_BxP shape {tuple(mask_BxP.shape)} != "
                     f"prompt_tokens_BxP shape {tuple(prompt_BxP.shape)}")
  if prompt_BxP.shape[1] < 1:
    raise ValueError("generate: prompt_tokens_BxP has no columns; give at least one token")
  if int(max_new_tokens) < 1:
    raise ValueError(f"generate: max_new_tokens={max_new_tokens} must be >= 1")
  if int(top_k) < 0 or (config is not None and top_k > config.vocab_size):
    raise ValueError(f"generate: top_k={top_k} must be in [0, vocab_size]")
  b = prompt_BxP.shape[0]
  if jnp.shape(temperature) not in ((), (b,)):
    raise ValueError(f"generate: temperature must be a scalar or one per row ({b},), got "
                     f"shape {jnp.shape(temperature)}")
  if _is_concrete(temperature) and not np.all(np.asarray(temperature) >= 0):
    t = np.atleast_1d(np.asarray(temperature, np.float64))
    raise ValueError(f"generate: temperature must be >= 0 (0 = greedy), got {t.tolist()} "
                     f"(bad at rows {np.flatnonzero(~(t >= 0)).tolist()})")
  if _is_concrete(top_p) and not 0 < float(top_p) <= 1:
    raise ValueError(f"generate: top_p={float(top_p)} is out of range (0, 1]")
  if config is not None and config.pos == "learned":
    need = prompt_BxP.shape[1] - 1 + int(max_new_tokens)
    if need > config.max_len:
      raise ValueError(f"generate: prompt length {prompt_BxP.shape[1]} + max_new_tokens "
                       f"{max_new_tokens} - 1 = {need} positions exceed the learned position "
                       f"table (max_len={config.max_len})")
  if _is_concrete(mask_BxP):
    m = np.asarray(mask_BxP).astype(bool)
    if not m[:, -1].all():
      raise ValueError(f"generate: rows {np.flatnonzero(~m[:, -1]).tolist()} have an empty or "
                       "right-padded prompt; prompts must be left-padded and non-empty")
    if (m[:, 1:] < m[:, :-1]).any():
      raise ValueError(f"generate: rows {np.flatnonzero((m[:, 1:] < m[:, :-1]).any(1)).tolist()}"
                       " of prompt_mask_BxP are not left-padded (0s then 1s)")
  if config is not None and _is_concrete(prompt_BxP):
    t = np.asarray(prompt_BxP)
    if t.size and (t.min() < 0 or t.max() >= config.vocab_size):
      raise ValueError(f"generate: prompt token ids must be in [0, {config.vocab_size}), got "
                       f"range [{t.min()}, {t.max()}]")


def generate(model, params, prompt_tokens_BxP, prompt_mask_BxP=None, *, rng=None,
             max_new_tokens: int, temperature=1.0, top_k: int = 0, top_p=1.0,
             stop_tokens=(), max_lengths_B=None, pad_id: int = 0,
             logit_processor: Processor | None = None, aux=None, cache_dtype=None,
             extra_outputs: Callable | None = None,
             config: tfm.TransformerConfig | None = None, cache=None,
             return_cache: bool = False) -> GenerationOutput:
  """Continue left-padded prompts with a jitted KV-cache decode loop.

  Args:
    model: a `Transformer` (any flax module with a `cfg` and its call signature), or a hashable
      `apply_fn(params, tokens_BxT, attention_mask_BxT, positions_BxT, cache) -> out` returning
      `.logits`, `.hidden` and `.cache`. A bare apply function builds its cache with
      `model.init_cache(batch_size, max_len, dtype)` when it has that method (the cache is then
      any pytree, e.g. one KV cache per transformer of a joint decoder), else with
      `tfm.init_cache(config, ...)`.
    params: the model parameters (boxed or unboxed).
    prompt_tokens_BxP: int prompts, left-padded.
    prompt_mask_BxP: 1 on real prompt tokens (0s then 1s per row); None = all real.
    rng: PRNG key; needed unless `temperature == 0`.
    max_new_tokens: N, the number of decode steps at most (static).
    temperature: softmax temperature, a scalar or per row [B]; 0 means greedy (argmax; top-k/
      top-p then do nothing) for the rows where it is 0. Must be >= 0; a traced value that is
      not > 0 (negative or NaN) is clamped to greedy (see the module docstring).
    top_k: keep the k most likely tokens (0 = off; static).
    top_p: nucleus mass (1 = off).
    stop_tokens: ids that end a row (the stop token is emitted and counted): a sequence [K]
      shared by all rows, or an int array [B, K] per row (pad with -1).
    max_lengths_B: per-row cap on generated tokens (<= N); None = N for every row.
    pad_id: emitted after a row finished.
    logit_processor: `(StepState, logits_BxV) -> logits_BxV`, applied before temperature.
    aux: pytree handed to processors as `step_state.aux` (e.g. value-head params).
    cache_dtype: KV cache dtype (default: the model's compute dtype).
    extra_outputs: optional `(StepState, raw logits_BxV, token_B) -> pytree of [B, ...]`,
      stacked over steps into `GenerationOutput.extras` ([B, N, ...]; zeros after a row ends).
    config: the `TransformerConfig`, only when `model` is a bare apply function: required to
      build its cache unless it has `init_cache`; when given, prompts are checked against it.
    cache: continue rows instead of starting them: the `cache` of an earlier call's output
      (rows in any order: `jaxlm.models.transformer.cache_rows`); the prompt is then what
      follows the tokens it holds, starting with the row's last token of that call (the one
      not in the cache).
      Each row's positions continue from its cached tokens; the cache grows by P - 1 + N
      slots (the earlier call's unused slots stay as masked holes).
    return_cache: also return the final KV cache (`GenerationOutput.cache`), to continue from.

  Returns:
    GenerationOutput.
  """
  if isinstance(model, nn.Module):
    config = model.cfg
    apply_fn, cache_fn = _ModuleApply(model), _CacheInit(model.cfg)
  elif callable(getattr(model, "init_cache", None)):
    apply_fn, cache_fn = model, _OwnCacheInit(model)
  else:
    apply_fn = model
    if config is None:
      raise ValueError("generate: pass config= (a TransformerConfig) with a bare apply function "
                       "that has no init_cache method")
    cache_fn = _CacheInit(config)
  if prompt_mask_BxP is None:
    prompt_mask_BxP = jnp.ones(jnp.shape(prompt_tokens_BxP), jnp.int32)
  _validate(config, prompt_tokens_BxP, prompt_mask_BxP, max_new_tokens, temperature, top_k,
            top_p)
  b = prompt_tokens_BxP.shape[0]
  greedy = _is_concrete(temperature) and bool(np.all(np.asarray(temperature) == 0))
  if rng is None:
    if not greedy:
      raise ValueError("generate: rng is required when sampling (temperature > 0)")
    rng = jax.random.key(0)
  stop = jnp.asarray(stop_tokens, jnp.int32)
  if stop.ndim == 1:
    stop = jnp.broadcast_to(stop[None], (b, stop.shape[0]))
  if stop.ndim != 2 or stop.shape[0] != b:
    raise ValueError(f"generate: stop_tokens must be [K] or [B={b}, K], got {stop.shape}")
  # Pad K to a power of two with -1 (never a token) so that most calls share one compilation.
  k = stop.shape[1]
  stop = jnp.pad(stop, ((0, 0), (0, (1 << max(k - 1, 0).bit_length()) - k)), constant_values=-1)
  if max_lengths_B is None:
    max_lengths_B = jnp.full((b,), max_new_tokens, jnp.int32)
  max_lengths_B = jnp.asarray(max_lengths_B, jnp.int32)
  if max_lengths_B.shape != (b,):
    raise ValueError(f"generate: max_lengths_B must have shape ({b},), got "
                     f"{max_lengths_B.shape}")
  held_BxS = None if cache is None else cache_mask(cache)
  if (held_BxS is not None and config is not None and config.pos == "learned"
      and _is_concrete(held_BxS)):
    need = (int(np.max(np.asarray(held_BxS).sum(-1))) + prompt_tokens_BxP.shape[1] - 1
            + int(max_new_tokens))
    if need > config.max_len:
      raise ValueError(f"generate: cached tokens + prompt + max_new_tokens - 1 = {need} "
                       f"positions exceed the learned position table (max_len={config.max_len})")
  cfg = _StaticConfig(max_new_tokens=int(max_new_tokens), greedy=greedy, top_k=int(top_k),
                       use_top_p=not (_is_concrete(top_p) and float(top_p) >= 1.0),
                       cache_dtype=cache_dtype and jnp.dtype(cache_dtype),
                       return_cache=bool(return_cache))
  return _generate_jit(apply_fn, cache_fn, extra_outputs, cfg, nn.meta.unbox(params),
                       jnp.asarray(prompt_tokens_BxP, jnp.int32), prompt_mask_BxP, rng,
                       jnp.broadcast_to(jnp.asarray(temperature, jnp.float32), (b,)),
                       jnp.asarray(top_p, jnp.float32),
                       stop, max_lengths_B, jnp.asarray(pad_id, jnp.int32),
                       as_pytree(logit_processor), aux, cache)
