"""Which prompts to roll out, and which drawn groups to keep: GRESO's pre-rollout filter, DAPO's
dynamic sampling, and `PromptDraws`, the prompt side of every policy-gradient rollout source.

Zheng et al. 2025, "Act Only When It Pays: Efficient Reinforcement Learning for LLM Reasoning
via Selective Rollouts" (GRESO). DAPO's dynamic sampling (`advantages.fill_groups`) throws a
zero-variance group away after paying for its G rollouts; GRESO observes that a prompt whose
group had zero variance at one visit mostly has zero variance at the next, and skips it before
rollout. Per prompt it keeps the streak s of consecutive latest visits whose group was all
solved ("easy") or all failed ("hard") and skips the prompt with probability

    P(skip) = 1 - max(p ** s, 0.01)                                (Sec. 4.1)

(s = 0: never skipped; the 0.01 floor lets every prompt come back). The base keep-probability
p is adapted per type after each batch (Sec. 4.2): when the batch's share of easy (hard)
groups is at least the target, p_easy (p_hard) falls by 0.01, else it rises by 0.01, within
[0.05, 0.95]; of a total zero-variance target t, easy gets t / 3 and hard 2t / 3 (hard prompts
are likelier to turn solvable as the policy improves). Prompts are drawn uniformly with
replacement here; skipped candidates are replaced by further draws, so a batch always has its
size and its share of varying groups rises instead of its cost falling (static shapes).

The filter's state is plain numpy (checkpointed as JSON with the rollout position); its
functions are pure.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.data.iterators import IndexedBatches
from jaxlm.rl import advantages as adv_lib

FLOOR = 0.01  # the smallest keep-probability of a prompt (GRESO's 0.01)
P_STEP, P_MIN, P_MAX = 0.01, 0.05, 0.95


@dataclasses.dataclass(frozen=True)
class Filter:
  """GRESO state over N training prompts.

  Attributes:
    easy, hard: [N] int: consecutive latest visits whose group was all solved / all unsolved
      (at most one of the two is nonzero).
    p_easy, p_hard: base keep-probabilities of the two kinds.
  """
  easy: np.ndarray
  hard: np.ndarray
  p_easy: float = 0.5
  p_hard: float = 0.5

  @classmethod
  def create(cls, num_prompts: int, p: float = 0.5) -> "Filter":
    zeros = np.zeros(num_prompts, np.int64)
    return cls(zeros, zeros.copy(), p, p)

  def to_json(self) -> dict:
    return {"easy": self.easy.tolist(), "hard": self.hard.tolist(), "p_easy": self.p_easy,
            "p_hard": self.p_hard}

  @classmethod
  def from_json(cls, d: dict, num_prompts: int) -> "Filter":
    missing = {"easy", "hard", "p_easy", "p_hard"} - set(d)
    if missing:
      raise ValueError(f"GRESO filter state lacks {sorted(missing)}")
    if len(d["easy"]) != num_prompts or len(d["hard"]) != num_prompts:
      raise ValueError(f"GRESO filter state is for {len(d['easy'])} prompts, the task has "
                       f"{num_prompts}")
    return cls(np.asarray(d["easy"], np.int64), np.asarray(d["hard"], np.int64),
               float(d["p_easy"]), float(d["p_hard"]))


def skip_probability(streak: np.ndarray, p: float) -> np.ndarray:
  """1 - max(p ** streak, FLOOR), and 0 where the streak is 0."""
  streak = np.asarray(streak)
  return np.where(streak > 0, 1.0 - np.maximum(p ** streak, FLOOR), 0.0)


def draw(state: Filter, rng: np.random.Generator, num: int, *, chunk: int | None = None
         ) -> tuple[np.ndarray, dict[str, float]]:
  """`num` prompt indices drawn uniformly with replacement, each candidate kept with
  probability 1 - P(skip) (module docstring).

  Returns:
    (indices [num] in draw order, stats): "skipped_share" of the candidates considered and
    "filter_active" (1.0 when a candidate had a streak, i.e. the filter could act).
  """
  n = len(state.easy)
  chunk = chunk or max(2 * num, 16)
  skip = skip_probability(state.easy, state.p_easy) + skip_probability(state.hard,
                                                                       state.p_hard)
  kept, seen, active = [], 0, False
  while (need := num - sum(map(len, kept))) > 0:
    cand = rng.integers(0, n, chunk)
    take = np.flatnonzero(rng.random(chunk) >= skip[cand])[:need]
    # Candidates after the one that completed the batch were not considered.
    considered = take[-1] + 1 if len(take) == need else chunk
    seen += considered
    active |= bool(np.any(skip[cand[:considered]] > 0))
    kept.append(cand[take])
  out = np.concatenate(kept)
  return out, {"skipped_share": 1.0 - num / seen, "filter_active": float(active)}


def update(state: Filter, prompts: np.ndarray, rewards_KxG: np.ndarray, *, target: float = 0.25,
           solved: float = 1.0, adapt: bool = True) -> tuple[Filter, dict[str, float]]:
  """The state after the K groups of `prompts` (in draw order) got `rewards_KxG`.

  A group is easy when every reward is >= `solved` (the binary verifier's 1), hard when its
  rewards are all equal and below it; easy and hard streaks reset each other and a varying
  group resets both. With `adapt`, p_easy and p_hard move by 0.01 towards the target shares
  t / 3 and 2t / 3 of easy and hard groups (pass `adapt=False` while no candidate had a
  streak: GRESO adapts from its second epoch on).

  Returns:
    (new state, stats): "easy_share" and "hard_share" of the K groups, "p_easy", "p_hard".
  """
  r = np.asarray(rewards_KxG, np.float64)
  zero = r.max(axis=1) == r.min(axis=1)
  is_easy = zero & (r.min(axis=1) >= solved)
  is_hard = zero & ~is_easy
  easy, hard = state.easy.copy(), state.hard.copy()
  for i, e, h in zip(np.asarray(prompts), is_easy, is_hard):  # in order: repeats accumulate
    easy[i], hard[i] = (easy[i] + 1) * e, (hard[i] + 1) * h
  p_easy, p_hard = state.p_easy, state.p_hard
  if adapt:
    step = lambda p, share, goal: (max(p - P_STEP, P_MIN) if share >= goal
                                   else min(p + P_STEP, P_MAX))
    p_easy = step(p_easy, is_easy.mean(), target / 3)
    p_hard = step(p_hard, is_hard.mean(), 2 * target / 3)
  new = Filter(easy, hard, p_easy, p_hard)
  return new, {"easy_share": float(is_easy.mean()), "hard_share": float(is_hard.mean()),
               "p_easy": p_easy, "p_hard": p_hard}


def dynamic_sampling_rows(config: Any, rewards_B) -> np.ndarray:
  """DAPO dynamic sampling: the rows (G per group, in group order) of the `prompts_per_step`
  groups `adv_lib.fill_groups` keeps of the K >= P drawn, whose rewards vary first."""
  g = config.group_size
  keep = np.asarray(adv_lib.fill_groups(jnp.asarray(rewards_B).reshape(-1, g),
                                        config.prompts_per_step))
  return (keep[:, None] * g + np.arange(g)).reshape(-1)


class PromptDraws(IndexedBatches):
  """The prompt side of a rollout source (`jaxlm.algos.pg`'s `Rollouts` and `pg_threads`'):
  which training prompts rollout `index` draws (`pg.Config.prompt_order`, through GRESO's
  filter with `prompt_filter="greso"`), which drawn groups it keeps (`dynamic_sampling_rows`),
  the checkpointed position (and filter), and per-rollout statistics the trainer logs
  (`pop_stats`): the drawn groups' mean reward and zero-variance share (before dynamic sampling
  keeps P of them), the rollout's wall time, and the filter's shares and probabilities.

  A subclass's `__call__(state)` calls `begin(state)` for the prompts and the sampling key,
  rolls out G completions of each, and `keep(prompts, rewards)` for the rows to train on.
  `config` is a `jaxlm.algos.pg.Config`."""

  def __init__(self, config: Any, num_prompts: int):
    super().__init__(config.train.seed)
    self.config, self.num_prompts = config, num_prompts
    self.filter = Filter.create(num_prompts) if config.prompt_filter == "greso" else None
    self._start = 0.0
    self._stats: list[dict[str, float]] = []
    self._draw_stats: dict[str, float] = {}
    self._zero_share: float | None = None  # the previous draw's (adaptive_oversample)

  def draw_count(self) -> int:
    """Prompts rollout `self.index` draws: oversample x P, or with `adaptive_oversample`
    1.25 P / (1 - z) for the previous draw's zero-variance share z (Config)."""
    c = self.config
    p, most = c.prompts_per_step, c.prompts_per_step * c.oversample
    z = self._zero_share
    if not c.adaptive_oversample or z is None or z >= 1.0:
      return most
    q = max(p // 4, 1)
    return int(min(max(-(-math.ceil(1.25 * p / (1.0 - z) - 1e-9) // q) * q, p), most))

  def _prompts(self, rng: np.random.Generator) -> np.ndarray:
    """The prompt indices of rollout `self.index - 1` (a function of seed, index, the filter
    and the previous draw): `draw_count()` of them."""
    n, p = self.num_prompts, self.draw_count()
    if self.filter is not None:
      out, self._draw_stats = draw(self.filter, rng, p)
      return out
    if self.config.prompt_order == "uniform":
      return rng.integers(0, n, p)
    start = (self.index - 1) * p
    passes = range(start // n, (start + p - 1) // n + 1)
    order = np.concatenate([np.random.default_rng((self.seed, 1 << 30, e)).permutation(n)
                            for e in passes])
    return order[start - passes[0] * n:][:p]

  def begin(self, state: Any) -> tuple[np.ndarray, jax.Array]:
    """(prompt indices, sampling key) of rollout `self.index`, which it advances; waits for
    the previous update (a sync the rollout makes anyway) and starts the rollout clock."""
    jax.block_until_ready(state.params)
    self._start = time.perf_counter()
    rng, key = self.next_seeds()
    return self._prompts(rng), key

  def keep(self, prompts: np.ndarray, rewards_B: np.ndarray) -> np.ndarray | None:
    """Notes the drawn groups' rewards (G per prompt, in draw order: the statistics, the
    filter's update) and returns the rows dynamic sampling keeps (None without oversampling:
    all of them)."""
    r = np.asarray(rewards_B, np.float64).reshape(len(prompts), -1)
    self._zero_share = float(np.mean(r.max(axis=1) == r.min(axis=1)))
    stats = {"drawn_reward": float(r.mean()), "rollout_s": time.perf_counter() - self._start,
             "drawn_zero_variance_share": self._zero_share, "drawn_prompts": len(prompts)}
    if self.filter is not None:
      active = self._draw_stats.get("filter_active", 0.0) > 0
      self.filter, filter_stats = update(self.filter, prompts, r, adapt=active,
                                         target=self.config.filter_target)
      stats.update(filter_stats, skipped_share=self._draw_stats["skipped_share"])
    self._stats.append(stats)
    return dynamic_sampling_rows(self.config, rewards_B) if self.config.oversample > 1 else None

  def pop_stats(self) -> dict[str, float]:
    """Means of the statistics of the rollouts since the last call."""
    rows, self._stats = self._stats, []
    return {k: float(np.mean([r[k] for r in rows])) for k in (rows[0] if rows else {})}

  def get_state(self) -> dict:
    state = {**super().get_state(), "zero_share": self._zero_share}
    return state if self.filter is None else {**state, "filter": self.filter.to_json()}

  def set_state(self, state: dict) -> None:
    super().set_state(state)
    self._zero_share = state.get("zero_share")
    if self.filter is not None:
      if "filter" not in state:
        raise ValueError("data state has no 'filter': the checkpoint was written without "
                         'prompt_filter="greso"')
      self.filter = Filter.from_json(state["filter"], self.num_prompts)
