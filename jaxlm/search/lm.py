"""Transformer-backed ``propose`` and ``score`` for the search of ``jaxlm.search.tree``.

* ``StepSampler`` is the ``propose(rng, prefixes[P], n) -> steps[P, n]`` of the tree search: it
  left-aligns the fixed-shape prefix buffers and calls ``jaxlm.generate`` (jitted KV-cache
  decode) until the step delimiter or <eos>, which finishes a solution.
* ``PRMScorer`` is ``score(prefixes[P]) -> values[P]``: the PRM's sigmoid value at each prefix's
  last token; ``prm_networks`` builds the PRM, a value head (``MLPHead``, out=1) on a
  transformer trunk that starts from the policy's (Snell et al. 2024, App. D).
* ``ThinkingSampler`` decodes a policy trained on "<prompt><open><trace><close><answer prefix>
  <answer>" with budget forcing (``tree.budget_force``: at most B thinking tokens, then the
  close token and the answer prefix are forced) or NoThinking (``tree.nothinking_prefill`` of a
  closed span), Ma et al. 2025.

Nothing here knows a task: token ids come from the caller's tokenizer and delimiters.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
from jaxlm.data import SimpleTokenizer
from jaxlm.models import MLPHead, Transformer, TransformerConfig, load_pretrained
from jaxlm.search import tree


def encode_prompts(prompt_ids: Sequence[Sequence[int]], max_len: int, pad_id: int = 0
                   ) -> tree.Prefixes:
  """Token-id prompts -> right-padded prefix buffers [Q, max_len], none done."""
  if max(map(len, prompt_ids)) >= max_len:
    raise ValueError(f"a prompt needs {max(map(len, prompt_ids))} tokens; max_len={max_len} is "
                     "too small")
  tokens = np.full((len(prompt_ids), max_len), pad_id, np.int32)
  for q, x in enumerate(prompt_ids):
    tokens[q, :len(x)] = x
  return tree.Prefixes(tokens, np.array([len(x) for x in prompt_ids], np.int32),
                       np.zeros(len(prompt_ids), bool))


def left_align(tokens_BxL: jax.Array, lengths_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Right-padded rows (valid up to lengths) -> left-padded rows and their mask."""
  chex.assert_rank([tokens_BxL, lengths_B], [2, 1])
  length = tokens_BxL.shape[1]
  pos_L = jnp.arange(length)
  idx_BxL = (pos_L[None, :] + lengths_B[:, None]) % length
  mask_BxL = pos_L[None, :] >= length - lengths_B[:, None]
  return jnp.take_along_axis(tokens_BxL, idx_BxL, axis=1), mask_BxL.astype(jnp.int32)


@flax.struct.dataclass
class StepSampler:
  """``tree.ProposeFn``: sample one step per prefix and proposal with the policy.

  Attributes:
    params: policy parameters (a pytree leaf set: jit traces them, no recompiles).
    model: the policy Transformer.
    step_len: most tokens per step.
    temperature: 0 for greedy decoding.
    delimiter_id: the step delimiter; eos_id finishes the solution.
    pad_id: written after a step's end.
  """
  params: Any
  model: Transformer = flax.struct.field(pytree_node=False)
  step_len: int = flax.struct.field(pytree_node=False)
  temperature: float = flax.struct.field(pytree_node=False)
  delimiter_id: int = flax.struct.field(pytree_node=False)
  eos_id: int = flax.struct.field(pytree_node=False)
  pad_id: int = flax.struct.field(pytree_node=False, default=0)

  def __call__(self, rng: jax.Array, prefixes: tree.Prefixes, n: int) -> tree.Steps:
    chex.assert_rank(prefixes.tokens, 2)
    p, length = prefixes.tokens.shape
    tokens_BxL = jnp.repeat(prefixes.tokens, n, axis=0)
    lengths_B = jnp.repeat(prefixes.lengths, n)
    left_BxL, mask_BxL = left_align(tokens_BxL, lengths_B)
    room_B = jnp.where(jnp.repeat(prefixes.done, n), 0,
                       jnp.clip(length - lengths_B, 0, self.step_len))
    out = generation.generate(
        self.model, self.params, left_BxL, mask_BxL, rng=rng, max_new_tokens=self.step_len,
        temperature=self.temperature, stop_tokens=(self.delimiter_id, self.eos_id),
        max_lengths_B=room_B, pad_id=self.pad_id)
    last_B = jnp.take_along_axis(out.tokens_BxN, jnp.maximum(out.lengths_B - 1, 0)[:, None],
                                 axis=1)[:, 0]
    done_B = (last_B == self.eos_id) | ~out.done_B  # <eos>, or a step that never ended
    return tree.Steps(out.tokens_BxN.reshape(p, n, self.step_len),
                      out.lengths_B.reshape(p, n), done_B.reshape(p, n))


def make_sampler(model_config: TransformerConfig, params: Any, step_len: int,
                 temperature: float, tok: SimpleTokenizer, delimiter: str) -> StepSampler:
  """A StepSampler whose steps end at the (one-token) ``delimiter`` of ``tok``."""
  return StepSampler(params, Transformer(model_config), step_len, temperature,
                     tok.encode(delimiter)[0], tok.eos_id, tok.pad_id)


def prm_networks(model_config: TransformerConfig):
  """(init_fn(key, trunk_params=None), values_fn(params, tokens, mask) -> probabilities [B, T],
  logits_fn(params, tokens, mask) -> the pre-sigmoid head output [B, T]).

  Params are {"trunk": transformer, "head": MLPHead(out=1)}; ``trunk_params`` (the policy's)
  replace the fresh trunk, keeping its logical-axis boxes.
  """
  model = Transformer(model_config)
  head = MLPHead(1, out_axis=None, squeeze=True)

  def init_fn(key, trunk_params=None):
    k1, k2 = jax.random.split(key)
    trunk = model.init(k1, jnp.zeros((1, model_config.max_len), jnp.int32))["params"]
    if trunk_params is not None:
      trunk = jax.tree.map(load_pretrained, trunk, trunk_params,
                           is_leaf=lambda x: isinstance(x, nn.Partitioned))
    return {"trunk": trunk,
            "head": head.init(k2, jnp.zeros((1, 1, model_config.d_model)))["params"]}

  def logits_fn(params, tokens_BxT, mask_BxT):
    hidden = model.apply({"params": params["trunk"]}, tokens_BxT,
                         attention_mask_BxT=mask_BxT).hidden
    return head.apply({"params": params["head"]}, hidden)

  values_fn = lambda params, tokens, mask: jax.nn.sigmoid(logits_fn(params, tokens, mask))
  return init_fn, values_fn, logits_fn


@flax.struct.dataclass
class PRMScorer:
  """``tree.ScoreFn``: the PRM's probability of success at each prefix's last token."""
  params: Any
  values_fn: Callable = flax.struct.field(pytree_node=False)

  def __call__(self, prefixes: tree.Prefixes) -> jax.Array:
    chex.assert_rank(prefixes.tokens, 2)
    mask_BxL = jnp.arange(prefixes.tokens.shape[1])[None, :] < prefixes.lengths[:, None]
    v_BxL = self.values_fn(self.params, prefixes.tokens, mask_BxL.astype(jnp.int32))
    return jnp.take_along_axis(v_BxL, (prefixes.lengths - 1)[:, None], axis=1)[:, 0]


@flax.struct.dataclass
class ThinkingSampler:
  """Budget-forced decoding of a policy trained on "<prompt><open><trace><close><prefix><answer>".

  ``thinking`` (prompts end with the open token): decode at most ``budget`` thinking tokens,
  stopping at the close token; where the span is still open, ``tree.budget_force`` writes the
  close token and the answer prefix; then decode the answer. ``nothinking``:
  ``tree.nothinking_prefill`` appends a closed thinking span and the answer prefix to prompts
  without the open token, then decodes the answer. Both return the full sequences and the tokens
  generated per row (forced tokens included), the token cost that Ma et al. match between the
  two modes.

  Attributes:
    params: policy parameters.
    model: the policy Transformer.
    answer_len: most answer tokens after the answer prefix.
    temperature: sampling temperature (0: greedy).
    think_open, think_close, eos_id, pad_id: token ids.
    forced_ids: close token + answer prefix, written by budget forcing.
    prefill_ids: open + close tokens + answer prefix, the NoThinking pre-fill.
  """
  params: Any
  model: Transformer = flax.struct.field(pytree_node=False)
  answer_len: int = flax.struct.field(pytree_node=False)
  temperature: float = flax.struct.field(pytree_node=False)
  think_open: int = flax.struct.field(pytree_node=False)
  think_close: int = flax.struct.field(pytree_node=False)
  eos_id: int = flax.struct.field(pytree_node=False)
  pad_id: int = flax.struct.field(pytree_node=False)
  forced_ids: tuple[int, ...] = flax.struct.field(pytree_node=False)
  prefill_ids: tuple[int, ...] = flax.struct.field(pytree_node=False)

  def _continue(self, rng, prefixes: tree.Prefixes, max_new: int, stop: tuple[int, ...]):
    """Decode up to max_new tokens after each prefix; returns the generated tokens [B, max_new]
    and lengths (0 for rows already done)."""
    left_BxL, mask_BxL = left_align(prefixes.tokens, prefixes.lengths)
    out = generation.generate(
        self.model, self.params, left_BxL, mask_BxL, rng=rng, max_new_tokens=max_new,
        temperature=self.temperature, stop_tokens=stop, pad_id=self.pad_id,
        max_lengths_B=jnp.where(prefixes.done, 0, max_new))
    return out.tokens_BxN, out.lengths_B

  def _answer(self, rng, tokens_BxL, lengths_B, done_B, spent_B):
    tokens_BxL = jnp.pad(tokens_BxL, ((0, 0), (0, self.answer_len)), constant_values=self.pad_id)
    new_BxN, new_B = self._continue(rng, tree.Prefixes(tokens_BxL, lengths_B, done_B),
                                    self.answer_len, (self.eos_id,))
    tokens_BxL, lengths_B = tree.write_tokens(tokens_BxL, lengths_B, new_BxN, new_B)
    return tree.Prefixes(tokens_BxL, lengths_B, jnp.ones_like(done_B)), spent_B + new_B

  def thinking(self, rng: jax.Array, prompts: tree.Prefixes, budget: int
               ) -> tuple[tree.Prefixes, jax.Array, jax.Array]:
    """Prompts [B] (right-padded, ending with the open token) -> (sequences, generated tokens
    [B], forced [B])."""
    chex.assert_rank(prompts.tokens, 2)
    k_think, k_answer = jax.random.split(rng)
    f = len(self.forced_ids)
    think_BxN, think_B = self._continue(k_think, prompts, budget, (self.think_close, self.eos_id))
    think_BxN = jnp.pad(think_BxN, ((0, 0), (0, f)), constant_values=self.pad_id)
    # A row that wrote <eos> inside its thinking has ended: it is neither forced nor answered.
    ended_B = prompts.done | jnp.any(think_BxN == self.eos_id, axis=1)
    forced_BxN, forced_len_B, forced_B = tree.budget_force(
        think_BxN, think_B, budget=budget, think_open=self.think_open,
        think_close=self.think_close, forced_ids=self.forced_ids, pad_id=self.pad_id)
    think_BxN = jnp.where(ended_B[:, None], think_BxN, forced_BxN)
    think_B = jnp.where(ended_B, think_B, forced_len_B)
    tokens_BxL = jnp.pad(prompts.tokens, ((0, 0), (0, budget + f)), constant_values=self.pad_id)
    tokens_BxL, lengths_B = tree.write_tokens(tokens_BxL, prompts.lengths, think_BxN, think_B)
    seqs, spent_B = self._answer(k_answer, tokens_BxL, lengths_B, ended_B, think_B)
    return seqs, spent_B, forced_B & ~ended_B

  def nothinking(self, rng: jax.Array, prompts: tree.Prefixes) -> tuple[tree.Prefixes, jax.Array]:
    """Prompts [B] without the open token -> (sequences, generated tokens [B], pre-fill
    included)."""
    chex.assert_rank(prompts.tokens, 2)
    f = len(self.prefill_ids)
    tokens_BxL = jnp.pad(prompts.tokens, ((0, 0), (0, f)), constant_values=self.pad_id)
    tokens_BxL, lengths_B = tree.nothinking_prefill(tokens_BxL, prompts.lengths,
                                                    self.prefill_ids)
    return self._answer(rng, tokens_BxL, lengths_B, prompts.done,
                        jnp.full(lengths_B.shape, f, jnp.int32))


def make_thinking_sampler(model_config: TransformerConfig, params: Any, answer_len: int,
                          temperature: float, tok: SimpleTokenizer, *, think_open: str,
                          think_close: str, answer_prefix: str) -> ThinkingSampler:
  """A ThinkingSampler with the ids of ``tok`` (one-token ``think_open`` / ``think_close``)."""
  ids = lambda text: tuple(tok.encode(text))
  close_answer = ids(think_close + answer_prefix)
  return ThinkingSampler(params, Transformer(model_config), answer_len, temperature,
                         ids(think_open)[0], ids(think_close)[0], tok.eos_id, tok.pad_id,
                         close_answer, ids(think_open) + close_answer)
