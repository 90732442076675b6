"""Logit processors for `jaxlm.generation.generate`: what one decode step sees, and the
processors the library ships (masks, forced token stretches, composition).

A processor is `(StepState, logits_BxV) -> logits_BxV`, applied to the raw logits before
temperature and top-k/top-p. Plain functions are static under `jax.jit` (hashed by identity,
`as_pytree` wraps them); `flax.struct` dataclasses (like the ones here) carry arrays as traced
fields, so a new mask or forced stretch of the same shape does not recompile the decode loop. A
processor may read `step_state.hidden_BxD` and take parameters from `step_state.aux`.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

_NEVER = np.iinfo(np.int32).max // 2  # A step index no loop reaches.


@flax.struct.dataclass
class StepState:
  """What a logit processor sees at one decode step (B rows, N = max_new_tokens).

  Attributes:
    step: int32 scalar, index of the token being chosen (0 = first new token).
    tokens_BxN: tokens generated so far; columns >= step hold `pad_id`.
    positions_B: position id of the token just fed (the chosen token goes at +1).
    prompt_lengths_B: number of real prompt tokens per row.
    hidden_BxD: final normalised hidden state at the token just fed (value heads read it).
    done_B: rows that had already finished before this step (their choice is discarded).
    rng: a key for this step, independent of the one used to sample.
    aux: the user's `aux` pytree, passed through unchanged.
  """
  step: jax.Array
  tokens_BxN: jax.Array
  positions_B: jax.Array
  prompt_lengths_B: jax.Array
  hidden_BxD: jax.Array
  done_B: jax.Array
  rng: jax.Array
  aux: Any = None


Processor = Callable[[StepState, jax.Array], jax.Array]


@flax.struct.dataclass
class StaticFn:
  """A plain function as a pytree without leaves, so `jax.jit` treats it as static (hashed by
  identity). Build it with `as_pytree`."""
  fn: Callable = flax.struct.field(pytree_node=False)

  def __call__(self, *args):
    return self.fn(*args)


def as_pytree(fn: Callable | None) -> Callable | None:
  """A callable that can be passed to a jitted function as an argument.

  Pytree callables (a `flax.struct` processor, a sampler holding params: their arrays are
  traced) and None are returned as they are; a plain function is wrapped in `StaticFn`.
  """
  leaves = [] if fn is None else jax.tree.leaves(fn)
  if len(leaves) != 1 or leaves[0] is not fn:
    return fn
  return StaticFn(fn)


@flax.struct.dataclass
class Compose:
  """Apply processors left to right."""
  processors: tuple

  def __call__(self, state, logits_BxV):
    for p in self.processors:
      logits_BxV = p(state, logits_BxV)
    return logits_BxV


def compose(*processors: Processor) -> Compose:
  """One processor that applies `processors` in order (None entries are skipped)."""
  return Compose(tuple(as_pytree(p) for p in processors if p is not None))


@flax.struct.dataclass
class MaskProcessor:
  """Only tokens with `allowed` true ([V] or [B, V]) can be chosen."""
  allowed: jax.Array

  def __call__(self, state, logits_BxV):
    del state
    return jnp.where(self.allowed.astype(bool), logits_BxV, -jnp.inf)


def mask_processor(allowed_V) -> MaskProcessor:
  """Restrict choices to `allowed_V` (bool [V], or [B, V] per row)."""
  allowed = jnp.asarray(allowed_V, bool)
  if allowed.ndim not in (1, 2):
    raise ValueError(f"mask_processor: allowed_V must be [V] or [B, V], got {allowed.shape}")
  return MaskProcessor(allowed)


@flax.struct.dataclass
class ForcedTokens:
  """Force `forced_F` at steps start_B .. start_B + F - 1 (see `forced_tokens_processor`)."""
  forced_F: jax.Array
  start_B: jax.Array
  start_fn: Callable | None = flax.struct.field(pytree_node=False, default=None)

  def __call__(self, state, logits_BxV):
    start_B = self.start_fn(state) if self.start_fn is not None else self.start_B
    start_B = jnp.broadcast_to(start_B, state.done_B.shape)
    token_B, active_B = forced_tokens_at(self.forced_F, state.step - start_B)
    one_hot_BxV = jnp.arange(logits_BxV.shape[-1])[None, :] == token_B[:, None]
    forced_BxV = jnp.where(one_hot_BxV, 0.0, -jnp.inf)
    return jnp.where(active_B[:, None], forced_BxV, logits_BxV)


def forced_tokens_at(forced_F: jax.Array, offset: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The forcing rule: (forced_F[offset], 0 <= offset < F) at offsets of any shape.

  `ForcedTokens` applies it at one decode step (offset = step - start_B);
  `jaxlm.search.tree.budget_force` applies it to every position of tokens already generated
  (offset = position - length), so both write the same forced stretch.
  """
  n = forced_F.shape[0]
  return forced_F[jnp.clip(offset, 0, n - 1)], (offset >= 0) & (offset < n)


def forced_tokens_processor(forced_tokens, start=None) -> ForcedTokens:
  """Force a token sequence from a per-row start step on (budget forcing, answer prefixes).

  Budget forcing (Muennighoff et al. 2025, "s1", Sec. 3.1) ends thinking at a token budget by
  forcing e.g. `</think>` + "Final answer:" at step `budget` (`jaxlm.search.tree.budget_force`
  writes the same stretch, by `forced_tokens_at`, after a decode that stopped at the budget).
  The start can be

  * an int or an int array [B]: a fixed step per row;
  * a callable `start(step_state) -> int32 [B]`, e.g. one that reads `step_state.tokens_BxN` to
    start only for rows that have not closed their thinking yet (`first_token_step` helps), or
    that reads per-row budgets from `step_state.aux`. It must return the same start at every
    step of the forced stretch (compute it from tokens before the start, or from `aux`).

  Forced tokens get processed log-prob 0; their raw log-prob is the model's.

  Args:
    forced_tokens: int sequence [F], F >= 1.
    start: see above. None means step 0.

  Returns:
    A processor.
  """
  forced_F = jnp.asarray(forced_tokens, jnp.int32)
  if forced_F.ndim != 1 or forced_F.shape[0] == 0:
    raise ValueError(f"forced_tokens_processor: forced_tokens must be a non-empty 1-D sequence, "
                     f"got shape {forced_F.shape}")
  if callable(start):
    return ForcedTokens(forced_F, jnp.zeros((), jnp.int32), start)
  return ForcedTokens(forced_F, jnp.asarray(0 if start is None else start, jnp.int32))


def first_token_step(state: StepState, token_ids) -> jax.Array:
  """Per row, the first step (< state.step) whose generated token is in `token_ids`, else a
  step no loop reaches. Useful inside a `forced_tokens_processor` start function."""
  hit_BxN = jnp.isin(state.tokens_BxN, jnp.asarray(token_ids, jnp.int32))
  hit_BxN &= jnp.arange(state.tokens_BxN.shape[1])[None, :] < state.step
  return jnp.where(hit_BxN.any(-1), jnp.argmax(hit_BxN, axis=-1), _NEVER).astype(jnp.int32)
