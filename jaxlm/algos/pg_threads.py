"""`pg.train`'s data from orchestrated rollouts: threads the model decodes between text it does
not (APR's join blocks, e3's environment-written verdicts; `jaxlm.search.threads`).

`ThreadRollouts` runs G rollouts of P training prompts with the current policy, scores each
with the task's binary reward on its (first) thread's text, computes one group-relative
advantage per rollout, and trains every token the rollout's threads decoded on it; tokens the
orchestrator or the environment wrote are context (loss off). With `per_rollout` each decoded
token weighs 1 / (tokens its rollout decoded), so a rollout counts once however many threads
it spawned (the loss is the mean over rollouts of the token mean of their threads under
"token_mean" aggregation); without it every decoded token weighs 1 and `pg.Config.aggregation`
alone decides. The sampler's log-probs (`threads.Completion`) give the logged `sampler_gap`, the
largest |trainer - sampler| log-prob of a trained token (-1 when the decoder gave none): ~0
when the rows RL trains on are the contexts the threads were decoded in.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.algos import pg
from jaxlm.data.batch import RLBatch
from jaxlm.envs.base import PromptTask
from jaxlm.rl import advantages as adv_lib
from jaxlm.rl import selection
from jaxlm.search import decoding
from jaxlm.search import threads

# (decode, training prompt indices, key) -> one Rollout per index.
RunFn = Callable[[threads.DecodeFn, np.ndarray, jax.Array], list[threads.Rollout]]


def row_batch(rows: Sequence[tuple[Sequence[int], Sequence[float]]], max_len: int, pad_id: int,
              weights: Sequence[float] | None = None) -> RLBatch:
  """Rows (ids, trained flags or per-id loss weights) -> right-padded RLBatch [len(rows),
  max_len]; the trained ids (weight > 0) are its actions and their weights its loss mask. Rows
  longer than max_len are cut. `weights` (per row) scale the loss mask of each row."""
  b = len(rows)
  tokens = np.full((b, max_len), pad_id, np.int32)
  attn, act, loss = np.zeros((3, b, max_len), np.float32)
  for r, (ids, trained) in enumerate(rows):
    n = min(len(ids), max_len)
    tokens[r, :n], attn[r, :n], loss[r, :n] = ids[:n], 1.0, trained[:n]
    act[r] = loss[r] > 0
    loss[r] *= 1.0 if weights is None else weights[r]
  zeros = np.zeros_like(attn)
  return RLBatch(tokens, attn, act, zeros, zeros, loss_mask=loss).validate()


def rollout_rows(rollouts: Sequence[threads.Rollout], advantages: np.ndarray,
                 zero_var: np.ndarray, max_len: int, pad_id: int, *, multiple: int = 1,
                 per_rollout: bool = True) -> tuple[RLBatch, np.ndarray, np.ndarray]:
  """Every thread of every rollout as a row, with its rollout's advantage and weights
  1 / (tokens the rollout decoded) on its decoded ids (1 without `per_rollout`); the rows and
  the length padded to a power of two or three quarters of one (`decoding.bucket(fine=True)`,
  so few shapes compile; APR's ~1200 thread rows take 1536, not 2048), the rows then up to a
  multiple of `multiple` (minibatches x microbatches x devices split them) and the length to
  at most max_len (e3's 530-token rows take 768, not 1024).

  Returns:
    (batch, per-row advantages, per-row zero-variance flags); padding rows have no tokens.
  """
  rows, weights, adv, zv = [], [], [], []
  for r, a, z in zip(rollouts, advantages, zero_var):
    total = max(sum(map(sum, r.thread_decoded)), 1) if per_rollout else 1
    for ids, decoded in zip(r.thread_ids, r.thread_decoded):
      rows.append((ids, decoded))
      weights.append(1.0 / total)
      adv.append(a)
      zv.append(z)
  n = -(-decoding.bucket(len(rows), fine=True) // multiple) * multiple
  length = min(decoding.bucket(max(len(ids) for ids, _ in rows), fine=True), max_len)
  pad = n - len(rows)
  batch = row_batch(rows + [([], [])] * pad, length, pad_id, weights + [0.0] * pad)
  return (batch, np.asarray(adv + [0.0] * pad, np.float32),
          np.asarray(zv + [True] * pad, bool))


def sampler_logp_rows(rollouts: Sequence[threads.Rollout], shape: tuple[int, int]
                      ) -> np.ndarray | None:
  """The sampler's log-probs of `rollout_rows`' rows ([rows, length], its `shape`) in the
  decision frame (the log-prob of token t + 1 at t, 0 at ids nobody sampled), or None when the
  decoder returned no log-probs (`threads.Completion`)."""
  out = np.zeros(shape, np.float32)
  r = 0
  for rollout in rollouts:
    if len(rollout.thread_logp) != len(rollout.thread_ids):
      return None
    for logp, decoded in zip(rollout.thread_logp, rollout.thread_decoded):
      logp = np.asarray(logp, np.float32)
      if np.isnan(logp[np.asarray(decoded, bool)]).any():
        return None
      n = min(len(logp), shape[1] + 1)
      out[r, :n - 1] = logp[1:n]
      r += 1
  return out


class ThreadRollouts(selection.PromptDraws):
  """`pg.train`'s data (module docstring): each call runs `run(decode, indices, key)` on
  P x G training prompt indices (each prompt G times in a row; drawn by its base
  `selection.PromptDraws`, GRESO's filter included) with the current policy at
  `config.sampling`'s temperature and returns the rollouts' threads as one scored
  `pg.OnlineBatch`. With `config.oversample` > 1 it runs oversample x P prompts (or
  `draw_count()`'s, with `adaptive_oversample`) and keeps P groups, those whose rewards vary
  first (`selection.dynamic_sampling_rows`).
  Rollout i is seeded by (train.seed, i), so resume is exact. Build it with
  `functools.partial(ThreadRollouts, run=..., tok=...)` for `pg.train(rollouts=...)`; `chunk`
  is `decoding.make_decode`'s."""

  def __init__(self, config: pg.Config, task: PromptTask, model: Any, forward: Any,
               policy_logits: Any, *, run: RunFn, tok: threads.Tokenizer,
               per_rollout: bool = True, chunk: int | None = None):
    super().__init__(config, len(task.train_prompts))
    self.task, self.model, self.run, self.tok = task, model, run, tok
    self.per_rollout, self.chunk = per_rollout, chunk
    self._score = jax.jit(functools.partial(pg.score_rows, config, forward, policy_logits))

  def __call__(self, state) -> pg.OnlineBatch:
    prompts, key = self.begin(state)
    config, g = self.config, self.config.group_size
    indices = np.repeat(prompts, g)
    decode = decoding.make_decode(self.model, state.params["policy"],
                                  temperature=config.sampling.temperature,
                                  pad_id=self.task.pad_id, chunk=self.chunk)
    rollouts = self.run(decode, indices, key)
    rewards = np.array([self.task.reward("train", int(i), self.tok.encode(r.parent))
                        for i, r in zip(indices, rollouts)], np.float32)
    rows = self.keep(prompts, rewards)
    if rows is not None:
      rollouts, rewards = [rollouts[i] for i in rows], rewards[rows]
    rewards_PxG = jnp.asarray(rewards.reshape(-1, g))
    adv = pg.outcome_advantages(config, rewards_PxG)
    zero_var = np.repeat(np.asarray(adv_lib.zero_variance_groups(rewards_PxG)), g)
    batch, adv_B, zv_B = rollout_rows(rollouts, np.asarray(adv).reshape(-1), zero_var,
                                      config.model.max_len, self.task.pad_id,
                                      multiple=(config.minibatches * config.train.accum_steps
                                                * jax.device_count()),
                                      per_rollout=self.per_rollout)
    rows = batch.tokens.shape[0]
    sampler_logp = sampler_logp_rows(rollouts, batch.tokens.shape)
    cut = np.repeat([r.stop in threads.BUDGET_STOPS for r in rollouts],
                    [len(r.thread_ids) for r in rollouts])
    out = self._score(state.params, state.extra, jax.tree.map(jnp.asarray, batch),
                      jnp.zeros(batch.tokens.shape) if sampler_logp is None else sampler_logp,
                      bootstrap_B=jnp.zeros((rows,)), outcome_B=None,
                      reward=jnp.full((rows,), rewards.mean()),
                      length=jnp.full((rows,), np.mean([r.decoded_tokens for r in rollouts])),
                      advantages_B=jnp.asarray(adv_B), zero_var_B=jnp.asarray(zv_B),
                      truncated_B=jnp.asarray(np.pad(cut, (0, rows - len(cut)))))
    out = out.replace(zero_var=jnp.full((rows,), zero_var.mean(), jnp.float32))
    if sampler_logp is None:  # a decoder without log-probs: the gap is not measured
      out = out.replace(sampler_gap=jnp.full((rows,), -1.0))
    return out

  def num_tokens(self, batch: pg.OnlineBatch) -> int:
    return int(jnp.sum(batch.rl.attention_mask))
