"""Multi-turn rollouts for online RL: batched episodes in `TextEnv`s as per-turn token rows.

An episode of a text game alternates environment observations and agent actions. The policy
acts on the context a training window holds before the action (`jaxlm.evaluation.prompt_ids`:
BOS and the last `transitions` (action, observation) chunks, what the offline algorithms trained
on), and each action is decoded by `jaxlm.generate` until a token that ends with the task's
`action_end` (or the token cap), so free text and fixed move sets are played the same way.

Layout. Every turn k of episode e is one left-aligned row [context_k, action_k]: the context
(environment tokens, and earlier actions when transitions > 1) has action_mask 0, the sampled
action tokens action_mask 1, the turn's reward sits on its last action token and `dones` marks
the last token of a terminal turn. An episode cut before its end (done False) gets one more
row, its final context with no action: the bootstrap row, whose last position is the state the
cut-off action leads to. Rows are episode-major and turn-minor, then padding rows. The rows
keep the exact token ids the sampler drew and the exact contexts it read, so the trainer's
teacher-forced log-probs on them are the behaviour log-probs.

GAE across turns (`episode_gae`): the rows of the whole batch, flattened in order, are one
decision sequence for `jaxlm.rl.returns.gae`. The next state of a turn's last action token is
the first action decision of the episode's next turn row (the value at its context's last
position); a terminal action stops the recursion (done), a cut-off episode bootstraps from its
bootstrap row's value, so no advantage or value leaks across episode boundaries.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.data.batch import RLBatch
from jaxlm.data.trajectory import TextTrajectory
from jaxlm.envs import base as envs_base
from jaxlm.evaluation import prompt_ids
from jaxlm.rl.returns import decision_view, gae


def stop_ids(tokenizer: Any, action_end: str, vocab_size: int) -> tuple[int, ...]:
  """Ids of every token whose text ends with `action_end` (each ends an action)."""
  ids = tuple(i for i in range(vocab_size) if tokenizer.decode([i]).endswith(action_end))
  if not ids:
    raise ValueError(f"no token of the tokenizer ends with action_end {action_end!r}")
  return ids


@dataclasses.dataclass
class Turn:
  """One sampled turn: its left-aligned row (prompt + action) and the sampler's log-probs."""
  tokens: np.ndarray       # [L] int32
  prompt_len: int
  length: int              # action tokens
  sampler_logp: np.ndarray  # [L] decision frame


class TurnSampler:
  """A `jaxlm.envs.base.PolicyFn` that samples each action and records every turn.

  `sampler(histories, episodes) -> action texts`, called by `envs_base.rollout` with
  env_tags = episode indices. Episode e always decodes in row e of a fixed [E, P] prompt buffer
  (finished episodes' rows hold a lone BOS), so one compiled decode loop serves the rollout.

  Args:
    sample_fn: `(params, prompt_ExP, mask_ExP, key) -> jaxlm.rl.rollout.Completions`.
    params: the policy's params.
    tokenizer: the task's tokenizer (bos_id, pad_id, encode, decode).
    num_episodes: E.
    prompt_width: P, the context buffer (row length minus the action cap).
    transitions: (action, observation) chunks of context (`prompt_ids`).
    key: sampling key; call i uses fold_in(key, i).
  """

  def __init__(self, sample_fn: Callable, params: Any, tokenizer: Any, num_episodes: int,
               prompt_width: int, transitions: int, key: jax.Array):
    self.sample_fn, self.params, self.tok = sample_fn, params, tokenizer
    self.num_episodes, self.prompt_width, self.transitions = num_episodes, prompt_width, transitions
    self.key, self.calls = key, itertools.count()
    self.turns: list[list[Turn]] = [[] for _ in range(num_episodes)]

  def context(self, history: envs_base.History, episode: int) -> list[int]:
    ids = prompt_ids(history, self.tok, self.transitions)
    if len(ids) > self.prompt_width:
      raise ValueError(f"episode {episode}, turn {len(history) // 2}: the context has {len(ids)} "
                       f"tokens, more than the {self.prompt_width} a row leaves before the action "
                       "(raise model.max_len or lower transitions)")
    return ids

  def __call__(self, histories: Sequence[envs_base.History], episodes: Sequence[int]
               ) -> list[str]:
    e_n, p = self.num_episodes, self.prompt_width
    tokens = np.full((e_n, p), self.tok.pad_id, np.int32)
    mask = np.zeros((e_n, p), np.int32)
    tokens[:, -1], mask[:, -1] = self.tok.bos_id, 1
    for h, e in zip(histories, episodes):
      ids = self.context(h, e)
      tokens[e], mask[e] = self.tok.pad_id, 0
      tokens[e, p - len(ids):], mask[e, p - len(ids):] = ids, 1
    c = jax.device_get(self.sample_fn(self.params, tokens, mask,
                                      jax.random.fold_in(self.key, next(self.calls))))
    actions = []
    for e in episodes:
      start, n = int(c.prompt_lengths_B[e]), int(c.lengths_B[e])
      self.turns[e].append(Turn(np.asarray(c.tokens_BxT[e]), start, n,
                                np.asarray(c.sampler_logp_BxT[e])))
      actions.append(self.tok.decode(c.tokens_BxT[e, start:start + n].tolist()))
    return actions


@dataclasses.dataclass(frozen=True)
class EpisodeBatch:
  """Host arrays of one multi-turn rollout (module docstring), R rows of length L."""
  rl: RLBatch              # numpy fields; rewards are the environment's (unscaled)
  sampler_logp: np.ndarray  # [R, L] decision frame
  bootstrap: np.ndarray    # [R] float32, 1 on bootstrap rows
  returns: np.ndarray      # [E] undiscounted episode returns
  turns: np.ndarray        # [E] actions taken
  action_tokens: np.ndarray  # [E] action tokens written
  rows: int                # real rows (turns + bootstrap rows)


def episode_rows(sampler: TurnSampler, trajectories: Sequence[TextTrajectory], row_len: int,
                 row_multiple: int) -> EpisodeBatch:
  """The per-turn rows of `trajectories` (played by `sampler`), padded to the smallest
  `row_multiple * 2**k` rows that hold them (few shapes, so few compiles)."""
  rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
  boot, action_tokens = [], []
  for e, (turns, traj) in enumerate(zip(sampler.turns, trajectories)):
    action_rewards = [r for r, a in zip(traj.rewards, traj.is_action) if a]
    if len(action_rewards) != len(turns):
      raise ValueError(f"episode {e}: {len(turns)} sampled turns but {len(action_rewards)} "
                       "actions in its trajectory")
    for k, (turn, r) in enumerate(zip(turns, action_rewards)):
      tokens = np.zeros(row_len, np.int32)
      tokens[:len(turn.tokens)] = turn.tokens
      end = turn.prompt_len + turn.length
      attn, act, rew, done = np.zeros((4, row_len), np.float32)
      attn[:end], act[turn.prompt_len:end] = 1.0, 1.0
      rew[end - 1] = r
      done[end - 1] = float(traj.done and k == len(turns) - 1)
      logp = np.zeros(row_len, np.float32)
      logp[:len(turn.sampler_logp)] = turn.sampler_logp
      rows.append((tokens, attn, act, rew, done, logp))
      boot.append(0.0)
    action_tokens.append(sum(t.length for t in turns))
    if not traj.done:  # bootstrap row: the final context, no action
      ids = sampler.context(tuple(zip(traj.texts, traj.is_action)), e)
      tokens = np.zeros(row_len, np.int32)
      tokens[:len(ids)] = ids
      attn = np.zeros(row_len, np.float32)
      attn[:len(ids)] = 1.0
      zeros = np.zeros(row_len, np.float32)
      rows.append((tokens, attn, zeros, zeros, zeros, zeros))
      boot.append(1.0)
  n = len(rows)
  total = row_multiple * (1 << max(0, (-(-n // row_multiple) - 1).bit_length()))
  fields = [np.zeros((total, row_len), dt)
            for dt in (np.int32, *[np.float32] * 5)]
  for i, row in enumerate(rows):
    for f, x in zip(fields, row):
      f[i] = x
  bootstrap = np.zeros(total, np.float32)
  bootstrap[:n] = boot
  tokens, attn, act, rew, done, logp = fields
  return EpisodeBatch(
      rl=RLBatch(tokens=tokens, attention_mask=attn, action_mask=act, rewards=rew, dones=done),
      sampler_logp=logp, bootstrap=bootstrap,
      returns=np.array([t.total_return for t in trajectories], np.float32),
      turns=np.array([len(t) for t in sampler.turns], np.float32),
      action_tokens=np.array(action_tokens, np.float32), rows=n)


def episode_gae(values_BxT: jax.Array, batch: RLBatch, bootstrap_B: jax.Array, *, gamma: float,
                lambda_: float) -> jax.Array:
  """GAE over the batch's rows flattened in order (module docstring): [B, T] advantages at
  action decisions, 0 elsewhere. Only bootstrap rows (bootstrap_B = 1) bootstrap; the last
  position of any other row passes the recursion on to the next row."""
  d = decision_view(batch)
  is_boot = d.is_bootstrap * jnp.asarray(bootstrap_B, jnp.float32)[:, None]
  flat = lambda x: jnp.reshape(x, (-1,))
  adv = gae(flat(d.rewards), flat(d.dones), flat(d.is_action), flat(is_boot),
            flat(values_BxT), gamma, lambda_)
  return adv.reshape(values_BxT.shape)
