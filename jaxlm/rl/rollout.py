"""Single-turn rollouts for online RL: G sampled completions per prompt as a token-level batch.

A rollout turns P prompts into B = P * G rows (response g of prompt p is row p * G + g, the
layout of `jaxlm.rl.advantages`): `jaxlm.generate` samples the completions, `realign` joins each
left-padded prompt and its completion into one left-aligned row, and `completion_batch` writes
the `RLBatch` the losses read: completion tokens are actions (action_mask 1), the prompt is
observation, the outcome reward sits on the last completion token, which is terminal (done 1,
also when the completion was cut by the length limit: the reward scores what was written).

Sampler and trainer agree by construction: the sampler draws from
`generation.sampling_logits(logits, temperature, top_k, top_p)` of the policy's logits, and the
trainer's log-probs (`token_logprobs`) apply the same function to teacher-forced logits, so the
behaviour log-probs of a batch equal the sampler's `processed_logprobs_BxN` (tests/rollout_test).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
from jaxlm.data.batch import RLBatch
from jaxlm.losses.pg import token_logprobs
from jaxlm.rl.returns import decision_view


@dataclasses.dataclass(frozen=True)
class Sampling:
  """How completions are drawn (the same fields define the trainer's log-probs).

  Attributes:
    max_new_tokens: most tokens per completion (the stop token counts).
    temperature: > 0 (online RL samples; greedy evaluation is separate).
    top_k: keep the k most likely tokens (0 = off).
    top_p: nucleus mass (1 = off).
    stop_tokens: ids that end a completion (e.g. eos).
    pad_id: padding id.
  """
  max_new_tokens: int = 16
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  stop_tokens: tuple[int, ...] = ()
  pad_id: int = 0

  def __post_init__(self):
    if self.temperature <= 0:
      raise ValueError(f"Sampling.temperature={self.temperature} must be > 0 for rollouts")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"Sampling.top_p={self.top_p} must be in (0, 1]")

  @property
  def filtered(self) -> bool:
    """A top-k or top-p filter truncates the distribution (its log-probs need full logits)."""
    return self.top_k > 0 or self.top_p < 1

  def logits(self, logits_xV: jax.Array) -> jax.Array:
    """Logits of the sampled distribution (`generation.sampling_logits`)."""
    return generation.sampling_logits(logits_xV, self.temperature, self.top_k,
                                      None if self.top_p >= 1 else self.top_p)

  def logprobs(self, logits_BxTxV: jax.Array, tokens_BxT: jax.Array) -> jax.Array:
    """[B, T] log-prob of token t+1 at position t under the sampled distribution (decision
    frame); positions whose token the filters exclude get -inf."""
    actions_BxT = jnp.concatenate([tokens_BxT[:, 1:], jnp.zeros_like(tokens_BxT[:, :1])], 1)
    return token_logprobs(self.logits(logits_BxTxV), actions_BxT)


@flax.struct.dataclass
class Completions:
  """Sampled rows, left-aligned: prompt, completion, padding.

  Attributes:
    tokens_BxT: int32, T = prompt buffer P + max_new_tokens.
    attention_mask_BxT: float32, 1 on prompt and completion tokens.
    action_mask_BxT: float32, 1 on completion tokens.
    sampler_logp_BxT: float32 decision frame: the sampler's log-prob of token t+1 at t on
      completion tokens, 0 elsewhere.
    prompt_lengths_B, lengths_B: int32 real prompt tokens and completion tokens per row.
    done_B: bool, the completion ended on a stop token.
  """
  tokens_BxT: jax.Array
  attention_mask_BxT: jax.Array
  action_mask_BxT: jax.Array
  sampler_logp_BxT: jax.Array
  prompt_lengths_B: jax.Array
  lengths_B: jax.Array
  done_B: jax.Array


def realign(prompt_BxP: jax.Array, prompt_mask_BxP: jax.Array,
            out: generation.GenerationOutput) -> Completions:
  """Left-padded prompts + generated tokens -> left-aligned rows (`Completions`)."""
  chex.assert_rank([prompt_BxP, prompt_mask_BxP], 2)
  b, p = prompt_BxP.shape
  n = out.tokens_BxN.shape[1]
  prompt_len_B = jnp.sum(prompt_mask_BxP, axis=1).astype(jnp.int32)
  pos_T = jnp.arange(p + n)
  # Row b of [prompt, completion] rolled left by its p - prompt_len_B leading pads.
  idx_BxT = (pos_T[None, :] + (p - prompt_len_B)[:, None]) % (p + n)
  take = lambda x_BxT: jnp.take_along_axis(x_BxT, idx_BxT, axis=1)
  joined = jnp.concatenate([prompt_BxP.astype(jnp.int32), out.tokens_BxN], axis=1)
  in_prompt_BxT = pos_T[None, :] < prompt_len_B[:, None]
  in_completion_BxT = ~in_prompt_BxT & (pos_T[None, :] < (prompt_len_B + out.lengths_B)[:, None])
  tokens_BxT = jnp.where(in_prompt_BxT | in_completion_BxT, take(joined), 0)
  logp_joined = jnp.concatenate([jnp.zeros((b, p), jnp.float32),
                                 out.processed_logprobs_BxN.astype(jnp.float32)], axis=1)
  # The log-prob of the token at index t belongs to decision position t - 1.
  logp_BxT = jnp.where(in_completion_BxT, take(logp_joined), 0.0)
  logp_BxT = jnp.concatenate([logp_BxT[:, 1:], jnp.zeros((b, 1), jnp.float32)], axis=1)
  return Completions(tokens_BxT=tokens_BxT,
                     attention_mask_BxT=(in_prompt_BxT | in_completion_BxT).astype(jnp.float32),
                     action_mask_BxT=in_completion_BxT.astype(jnp.float32),
                     sampler_logp_BxT=logp_BxT, prompt_lengths_B=prompt_len_B,
                     lengths_B=out.lengths_B, done_B=out.done_B)


def sample(model: Any, params: Any, prompt_BxP: jax.Array, prompt_mask_BxP: jax.Array,
           rng: jax.Array, sampling: Sampling, group_size: int) -> Completions:
  """G completions of each of P left-padded prompts: B = P * G left-aligned rows."""
  prompt_BxP = jnp.repeat(jnp.asarray(prompt_BxP, jnp.int32), group_size, axis=0)
  prompt_mask_BxP = jnp.repeat(jnp.asarray(prompt_mask_BxP, jnp.int32), group_size, axis=0)
  out = generation.generate(model, params, prompt_BxP, prompt_mask_BxP, rng=rng,
                            max_new_tokens=sampling.max_new_tokens,
                            temperature=sampling.temperature, top_k=sampling.top_k,
                            top_p=sampling.top_p, stop_tokens=sampling.stop_tokens,
                            pad_id=sampling.pad_id)
  return realign(prompt_BxP, prompt_mask_BxP, out)


def completion_batch(c: Completions, rewards_B: jax.Array) -> RLBatch:
  """The `RLBatch` of a single-turn rollout: the reward on each row's last completion token,
  which is terminal; a row with an empty completion carries no action and no reward."""
  t_len = c.tokens_BxT.shape[1]
  last_B = c.prompt_lengths_B + c.lengths_B - 1
  has_B = c.lengths_B > 0
  last_BxT = (jnp.arange(t_len)[None, :] == last_B[:, None]) & has_B[:, None]
  rewards_BxT = jnp.where(last_BxT, jnp.asarray(rewards_B, jnp.float32)[:, None], 0.0)
  return RLBatch(tokens=c.tokens_BxT, attention_mask=c.attention_mask_BxT,
                 action_mask=c.action_mask_BxT, rewards=rewards_BxT,
                 dones=last_BxT.astype(jnp.float32))


def completion_ids(c: Completions, stop_tokens: Sequence[int] = ()) -> list[list[int]]:
  """Host-side token ids of each row's completion (stop tokens dropped)."""
  tokens = np.asarray(c.tokens_BxT)
  starts, lengths = np.asarray(c.prompt_lengths_B), np.asarray(c.lengths_B)
  stop = set(stop_tokens)
  return [[int(t) for t in tokens[b, s:s + n] if t not in stop]
          for b, (s, n) in enumerate(zip(starts, lengths))]


def completion_texts(c: Completions, decode: Callable[[Sequence[int]], str],
                     stop_tokens: Sequence[int] = ()) -> list[str]:
  """Host-side text of each row's completion (stop tokens dropped)."""
  return [decode(ids) for ids in completion_ids(c, stop_tokens)]


def behaviour_gap(batch: RLBatch, logp_BxT: jax.Array, sampler_logp_BxT: jax.Array) -> jax.Array:
  """[B] max |trainer - sampler| log-prob over each row's trained tokens (0 when they agree;
  1e9 for a token the trainer's filters exclude): the sampler / trainer mismatch an inference
  engine can introduce (TRL PR #3867)."""
  mask_BxT = decision_view(batch).trains > 0
  gap_BxT = jnp.where(mask_BxT, jnp.abs(logp_BxT - sampler_logp_BxT), 0.0)
  return jnp.max(jnp.where(jnp.isfinite(gap_BxT), gap_BxT, 1e9), axis=1)
