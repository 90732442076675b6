"""PRM-guided search over reasoning steps, and budget forcing on token arrays.

Search follows Snell, Lee, Xu, Kumar 2024 ("Scaling LLM Test-Time Compute Optimally"): beam
search against a process reward model (PRM), lookahead search and diverse verifier tree search
(DVTS; Beeching et al. 2024). All three, and plain best-of-N sampling, are one procedure over a
frontier of N fixed-shape prefixes split into G independent groups: each round keeps the K best
prefixes of every group and expands each kept prefix with M proposed steps (G * K * M = N).

    best-of-N:   G = N,     K = 1,     M = 1   (N independent samples)
    beam search: G = 1,     K = N / M, M       (keep N/M, expand each by M)
    DVTS:        G = N / M, K = 1,     M       (N/M independent greedy subtrees)

The model enters only through two functions, so the jitted transformer decode and the PRM value
head plug in later:

    propose(rng, prefixes, n) -> Steps   prefixes [P], steps [P, n] (sampled up to a delimiter)
    score(prefixes) -> values [P]        PRM value of the last step of each prefix

Both must be jax-traceable (rounds run in ``lax.fori_loop``, so one round compiles once).

Budget forcing follows Muennighoff et al. 2025 (s1) as used by Ma et al. 2025 ("Reasoning Models
Can Be Effective Without Thinking"): cap thinking at a token budget and force the end of the
thinking span plus an answer prefix; NoThinking pre-fills an already closed thinking span.
"""

import functools
from typing import Callable, Sequence

import chex
from flax import struct
import jax
import jax.numpy as jnp

from jaxlm import processors
from jaxlm.search import select

# The NoThinking pre-fill of Ma et al. 2025 (wrapped in the model's think delimiters).
NOTHINKING_TEXT = "Okay, I think I have finished thinking."


@struct.dataclass
class Prefixes:
  """Token prefixes in a fixed-shape buffer.

  Attributes:
    tokens: [..., L] int32, valid up to ``lengths``.
    lengths: [...] int32.
    done: [...] bool, the solution is complete (answer written or buffer full).
  """
  tokens: jax.Array
  lengths: jax.Array
  done: jax.Array


@struct.dataclass
class Steps:
  """Proposed steps: tokens [..., S] valid up to lengths [...]; done marks a finished solution."""
  tokens: jax.Array
  lengths: jax.Array
  done: jax.Array


@struct.dataclass
class SearchResult:
  """Final frontier of a search.

  Attributes:
    prefixes: [Q, N] candidate solutions.
    scores: [Q, N] aggregated PRM scores (``select.aggregate_step_scores`` methods).
    valid: [Q, N] slots holding a distinct candidate (a finished beam kept by a later round
      occupies one slot; its siblings are invalid).
    num_steps: [Q] proposed steps that extended an unfinished prefix (compute spent).
  """
  prefixes: Prefixes
  scores: jax.Array
  valid: jax.Array
  num_steps: jax.Array


ProposeFn = Callable[[jax.Array, Prefixes, int], Steps]
ScoreFn = Callable[[Prefixes], jax.Array]


def write_tokens(tokens_BxL: jax.Array, lengths_B: jax.Array, new_BxS: jax.Array,
                 new_lengths_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Write new_BxS[b, :new_lengths_B[b]] at position lengths_B[b]; overflow past L is dropped.

  Returns:
    (tokens_BxL, lengths_B) with lengths clipped to L.
  """
  chex.assert_rank([tokens_BxL, lengths_B, new_BxS, new_lengths_B], [2, 1, 2, 1])
  max_len, step_len = tokens_BxL.shape[1], new_BxS.shape[1]
  pos_BxS = lengths_B[:, None] + jnp.arange(step_len)[None, :]
  keep_BxS = jnp.arange(step_len)[None, :] < new_lengths_B[:, None]
  pos_BxS = jnp.where(keep_BxS, pos_BxS, max_len)  # out of bounds: dropped
  rows_BxS = jnp.broadcast_to(jnp.arange(tokens_BxL.shape[0])[:, None], pos_BxS.shape)
  tokens_BxL = tokens_BxL.at[rows_BxS, pos_BxS].set(new_BxS.astype(tokens_BxL.dtype),
                                                     mode="drop")
  return tokens_BxL, jnp.minimum(lengths_B + new_lengths_B, max_len)


def _flat(tree, ndim):
  """Merge the first ``ndim`` axes of every leaf."""
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[ndim:]), tree)


def _unflat(tree, shape):
  return jax.tree.map(lambda x: x.reshape(tuple(shape) + x.shape[1:]), tree)


def append_steps(prefixes: Prefixes, steps: Steps) -> Prefixes:
  """Extend each unfinished prefix by its step; finished prefixes are left unchanged.

  Args:
    prefixes: leading shape [...].
    steps: same leading shape.

  Returns:
    Prefixes; a prefix that fills its buffer is marked done.
  """
  lead = prefixes.lengths.shape
  chex.assert_shape(steps.lengths, lead)
  p, s = _flat(prefixes, len(lead)), _flat(steps, len(lead))
  new_len = jnp.where(p.done, 0, s.lengths)
  tokens, lengths = write_tokens(p.tokens, p.lengths, s.tokens, new_len)
  done = p.done | s.done | (lengths >= tokens.shape[1])
  return _unflat(Prefixes(tokens, lengths, done), lead)


def expand(rng: jax.Array, prefixes: Prefixes, propose: ProposeFn, n: int) -> Prefixes:
  """n proposed continuations of each prefix: [P] -> [P, n]."""
  steps = propose(rng, prefixes, n)
  chex.assert_shape(steps.lengths, prefixes.lengths.shape + (n,))
  tiled = jax.tree.map(lambda x: jnp.repeat(x[:, None], n, axis=1), prefixes)
  return append_steps(tiled, steps)


def rollout_score(rng: jax.Array, prefixes: Prefixes, score: ScoreFn,
                  rollout: ProposeFn | None = None, lookahead: int = 0) -> jax.Array:
  """PRM value of each prefix, optionally after ``lookahead`` further rollout steps.

  Lookahead search (Snell et al. 2024): the value of a step is the PRM score at the end
  of a k-step rollout from it (``rollout`` is typically the greedy decode); the rollout itself
  is discarded. Rollouts stop early at finished solutions.

  Args:
    rng: key for the rollout sampler.
    prefixes: [P].
    score: PRM.
    rollout: proposal used for the lookahead (called with n = 1).
    lookahead: k >= 0.

  Returns:
    [P] values.
  """
  if lookahead and rollout is None:
    raise ValueError("lookahead > 0 needs a rollout function")
  for key in jax.random.split(rng, lookahead):
    prefixes = jax.tree.map(lambda x: x[:, 0], expand(key, prefixes, rollout, 1))
  return score(prefixes)


def tree_search(rng: jax.Array, prompts: Prefixes, propose: ProposeFn, score: ScoreFn, *,
                num_samples: int, beam_width: int, num_groups: int, max_steps: int,
                aggregate: str = "last", rollout: ProposeFn | None = None,
                lookahead: int = 0) -> SearchResult:
  """The shared search (module docstring): G groups, keep K, expand by M, for max_steps rounds.

  Args:
    rng: PRNG key.
    prompts: [Q] question prefixes (``done`` False).
    propose: step sampler.
    score: PRM on prefixes.
    num_samples: N, frontier size (the generation budget per round).
    beam_width: M, proposals per kept prefix.
    num_groups: G, independent subtrees; N must be divisible by G * M.
    max_steps: rounds (step cap); the first round samples N first steps from the prompt.
    aggregate: how a prefix's step scores combine for ranking: "last", "min" or "prod"
      (``select.aggregate_step_scores``).
    rollout: sampler for lookahead scoring.
    lookahead: rollout steps per scored step (0: score the step itself).

  Returns:
    SearchResult with [Q, N] final candidates; choose among them with ``select`` (e.g.
    best_of_n or weighted_vote over ``scores`` with ``valid``).
  """
  n, m, g = num_samples, beam_width, num_groups
  if n < 1 or m < 1 or g < 1 or n % (g * m):
    raise ValueError(f"num_samples={n} must be a positive multiple of num_groups * beam_width"
                     f" = {g} * {m}")
  if max_steps < 1:
    raise ValueError(f"max_steps must be >= 1, got {max_steps}")
  if aggregate not in select.AGGREGATIONS:
    raise ValueError(f"aggregate must be one of {select.AGGREGATIONS}, got {aggregate!r}")
  chex.assert_rank(prompts.tokens, 2)
  q, keep = prompts.lengths.shape[0], n // (g * m)
  score_fn = functools.partial(rollout_score, score=score, rollout=rollout,
                               lookahead=lookahead)

  rng, k_prop, k_score = jax.random.split(rng, 3)
  frontier = expand(k_prop, prompts, propose, n)  # [Q, N]
  scores = score_fn(k_score, _flat(frontier, 2)).reshape(q, n)
  valid = jnp.ones((q, n), bool)
  num_steps = jnp.where(prompts.done, 0, n).astype(jnp.int32)

  def round_fn(_, carry):
    rng, frontier, scores, valid, num_steps = carry
    rng, k_prop, k_score = jax.random.split(rng, 3)
    ranked_QxGxS = jnp.where(valid, scores, -jnp.inf).reshape(q, g, n // g)
    _, idx_QxGxK = jax.lax.top_k(ranked_QxGxS, keep)
    idx_QxP = (idx_QxGxK + (n // g) * jnp.arange(g)[None, :, None]).reshape(q, g * keep)
    take = lambda x: jnp.take_along_axis(
        x, idx_QxP.reshape(idx_QxP.shape + (1,) * (x.ndim - 2)), axis=1)
    parents = jax.tree.map(take, frontier)  # [Q, P]
    parent_scores, parent_valid = take(scores), take(valid)
    children = expand(k_prop, _flat(parents, 2), propose, m)  # [Q * P, M]
    new_scores = score_fn(k_score, _flat(children, 2)).reshape(q, g * keep, m)
    was_done = parents.done[..., None]
    # The running aggregate and the new step's score, aggregated as two steps (last, min and
    # prod fold pairwise).
    pair = jnp.stack(jnp.broadcast_arrays(parent_scores[..., None], new_scores), axis=-1)
    pair_scores = select.aggregate_step_scores(pair, None, aggregate)
    scores = jnp.where(was_done, parent_scores[..., None], pair_scores)
    first = jnp.arange(m)[None, None, :] == 0
    valid = parent_valid[..., None] & (first | ~was_done)
    num_steps += m * jnp.sum(parent_valid & ~parents.done, axis=1).astype(jnp.int32)
    frontier = _unflat(_flat(children, 2), (q, n))
    return rng, frontier, scores.reshape(q, n), valid.reshape(q, n), num_steps

  carry = (rng, frontier, scores, valid, num_steps)
  _, frontier, scores, valid, num_steps = jax.lax.fori_loop(0, max_steps - 1, round_fn, carry)
  return SearchResult(frontier, scores, valid, num_steps)


def best_of_n_sampling(rng, prompts, propose, score, *, num_samples, max_steps, **kwargs):
  """N independent samples scored by the PRM (``tree_search`` with G = N, M = 1)."""
  return tree_search(rng, prompts, propose, score, num_samples=num_samples, beam_width=1,
                     num_groups=num_samples, max_steps=max_steps, **kwargs)


def beam_search(rng, prompts, propose, score, *, num_samples, beam_width, max_steps,
                **kwargs):
  """PRM beam search (Snell et al. 2024): keep N/M prefixes, expand each by M."""
  return tree_search(rng, prompts, propose, score, num_samples=num_samples,
                     beam_width=beam_width, num_groups=1, max_steps=max_steps, **kwargs)


def dvts(rng, prompts, propose, score, *, num_samples, beam_width, max_steps, **kwargs):
  """Diverse verifier tree search: N/M independent subtrees, each keeping its best step of M."""
  return tree_search(rng, prompts, propose, score, num_samples=num_samples,
                     beam_width=beam_width, num_groups=num_samples // beam_width,
                     max_steps=max_steps, **kwargs)


def _open_thinking(tokens_BxT, lengths_B, think_open, think_close, starts_open):
  """Whether the thinking span is still open after the first lengths_B tokens."""
  t = tokens_BxT.shape[1]
  pos_T = jnp.arange(t)
  inside_BxT = pos_T[None, :] < lengths_B[:, None]
  last = lambda tok: jnp.max(jnp.where(inside_BxT & (tokens_BxT == tok), pos_T, -2), axis=1)
  last_open = jnp.maximum(last(think_open), -1 if starts_open else -2)
  return last_open > last(think_close)


def budget_force(tokens_BxT: jax.Array, lengths_B: jax.Array, *, budget: int,
                 think_open: int, think_close: int, forced_ids: Sequence[int],
                 starts_open: bool = True, pad_id: int = 0
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Budget forcing on generated tokens (s1, Muennighoff et al. 2025; Ma et al. 2025).

  Caps each completion at ``budget`` tokens; where the thinking span is still open at the cap,
  writes ``forced_ids`` (the close-think tokens followed by an answer prefix) so that continuing
  the decode from the returned prefix yields an answer. The forced stretch is the one
  ``processors.forced_tokens_processor`` forces inside a decode (``forced_tokens_at``), written
  after a decode that stopped at the budget.

  Args:
    tokens_BxT: generated tokens (after the prompt).
    lengths_B: generated lengths.
    budget: token cap B.
    think_open: id of the token opening the thinking span.
    think_close: id of the token closing it.
    forced_ids: tokens written when the span is open, e.g. [think_close, *answer_prefix].
    starts_open: the prompt already opened the thinking span.
    pad_id: written over tokens past the cap.

  Returns:
    (tokens_BxT, lengths_B, forced_B): the new prefixes and which rows were forced.
  """
  chex.assert_rank([tokens_BxT, lengths_B], [2, 1])
  forced_F = jnp.asarray(forced_ids, jnp.int32)
  if tokens_BxT.shape[1] < budget + forced_F.shape[0]:
    raise ValueError(f"tokens_BxT has {tokens_BxT.shape[1]} positions; budget forcing needs "
                     f"budget + len(forced_ids) = {budget + forced_F.shape[0]}")
  lengths_B = jnp.minimum(lengths_B, budget)
  offset_BxT = jnp.arange(tokens_BxT.shape[1])[None, :] - lengths_B[:, None]
  tokens_BxT = jnp.where(offset_BxT < 0, tokens_BxT, pad_id)
  forced_B = _open_thinking(tokens_BxT, lengths_B, think_open, think_close, starts_open)
  token_BxT, active_BxT = processors.forced_tokens_at(forced_F, offset_BxT)
  tokens_BxT = jnp.where(forced_B[:, None] & active_BxT, token_BxT.astype(tokens_BxT.dtype),
                         tokens_BxT)
  return tokens_BxT, lengths_B + jnp.where(forced_B, forced_F.shape[0], 0), forced_B


def nothinking_prefill(tokens_BxL: jax.Array, lengths_B: jax.Array,
                       prefill_ids: Sequence[int]) -> tuple[jax.Array, jax.Array]:
  """NoThinking (Ma et al. 2025): append a closed thinking span to each prompt.

  Args:
    tokens_BxL: prompts in a buffer with room for the pre-fill.
    lengths_B: prompt lengths.
    prefill_ids: e.g. tokens of ``<think>`` + NOTHINKING_TEXT + ``</think>``; tokens past the
      buffer end are dropped.

  Returns:
    (tokens_BxL, lengths_B).
  """
  ids_F = jnp.asarray(prefill_ids, jnp.int32)
  if tokens_BxL.shape[1] < ids_F.shape[0]:
    raise ValueError(f"buffer of {tokens_BxL.shape[1]} tokens cannot hold the pre-fill of "
                     f"{ids_F.shape[0]}")
  b = tokens_BxL.shape[0]
  return write_tokens(tokens_BxL, lengths_B, jnp.broadcast_to(ids_F, (b, ids_F.shape[0])),
                      jnp.full((b,), ids_F.shape[0], jnp.int32))
