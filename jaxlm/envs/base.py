"""Text environments: the `TextEnv` protocol, batched rollouts and score reporting."""

import dataclasses
import functools
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import scipy.stats

from jaxlm.data.trajectory import TextTrajectory

History = tuple[tuple[str, bool], ...]  # (text, is_action) segments so far, oldest first
PolicyFn = Callable[[list[History]], list[str]]


class TextEnv(Protocol):
  """An episodic environment that speaks text.

  reset(seed) starts a new episode deterministically from `seed` and returns the first
  observation; step(action) returns (observation, reward, done).
  """

  def reset(self, seed: int) -> str: ...

  def step(self, action: str) -> tuple[str, float, bool]: ...


def rollout(envs_or_factory: Sequence[TextEnv] | Callable[[], TextEnv], policy_fn: PolicyFn,
            seeds: Sequence[int], max_steps: int,
            env_tags: Sequence[Any] | None = None) -> list[TextTrajectory]:
  """Runs one episode per seed, calling `policy_fn` once per step on all unfinished episodes.

  Args:
    envs_or_factory: one env per seed, or a zero-argument factory called once per seed.
    policy_fn: maps the histories of the unfinished episodes to one action text each.
    seeds: episode seeds (passed to reset).
    max_steps: at most this many actions per episode; an episode cut here has done=False and
      ends with its last observation (so its value can be bootstrapped).
    env_tags: one tag per seed (e.g. which policy variant plays that episode); when given,
      `policy_fn(histories, tags)` also receives the tags of the unfinished episodes, so one
      batched call can serve several policies.

  Returns:
    One TextTrajectory per seed, in order.
  """
  envs = [envs_or_factory() for _ in seeds] if callable(envs_or_factory) else list(envs_or_factory)
  if len(envs) != len(seeds):
    raise ValueError(f"got {len(envs)} envs for {len(seeds)} seeds")
  hist = [[(env.reset(int(s)), False)] for env, s in zip(envs, seeds)]
  rewards = [[0.0] for _ in seeds]
  done = [False] * len(seeds)
  for _ in range(max_steps):
    active = [i for i in range(len(envs)) if not done[i]]
    if not active:
      break
    histories = [tuple(hist[i]) for i in active]
    actions = (policy_fn(histories) if env_tags is None else
               policy_fn(histories, [env_tags[i] for i in active]))
    if len(actions) != len(active):
      raise ValueError(f"policy_fn returned {len(actions)} actions for {len(active)} histories")
    for i, action in zip(active, actions):
      obs, r, done[i] = envs[i].step(action)
      hist[i] += [(action, True), (obs, False)]
      rewards[i] += [float(r), 0.0]
  return [TextTrajectory(texts=[t for t, _ in h], is_action=[a for _, a in h], rewards=r,
                         done=bool(d)) for h, r, d in zip(hist, rewards, done)]


def normalized_score(raw, min_score: float, mean_score: float, max_score: float):
  """LMRL-Gym score normalisation: min -> 0, dataset mean -> 50, max -> 100, piecewise linear.

  Works elementwise on scalars or arrays; values outside [min, max] extrapolate linearly.
  """
  if not min_score < mean_score < max_score:
    raise ValueError(f"need min < mean < max, got {min_score}, {mean_score}, {max_score}")
  raw = np.asarray(raw, np.float64)
  low = (raw - min_score) / (mean_score - min_score) * 50.0
  high = 50.0 + (raw - mean_score) / (max_score - mean_score) * 50.0
  out = np.where(raw < mean_score, low, high)
  return float(out) if out.ndim == 0 else out


def mean_confidence_interval(values, confidence: float = 0.95) -> tuple[float, float]:
  """Mean and half-width of the Student-t confidence interval of the mean (nan if n < 2)."""
  x = np.asarray(values, np.float64).ravel()
  if x.size == 0:
    raise ValueError("no values")
  if x.size < 2:
    return float(x.mean()), float("nan")
  sem = x.std(ddof=1) / np.sqrt(x.size)
  return float(x.mean()), float(sem * scipy.stats.t.ppf(0.5 + confidence / 2, x.size - 1))


@dataclasses.dataclass(frozen=True)
class ScoreConstants:
  """LMRL-Gym normalisation: min -> 0, dataset mean -> 50, max -> 100."""
  min: float
  mean: float
  max: float

  def normalize(self, raw):
    return normalized_score(raw, self.min, self.mean, self.max)


@dataclasses.dataclass(frozen=True)
class PromptTask:
  """A single-turn text task: prompts with a verifiable reward (online RL, `jaxlm.algos.pg`).

  Attributes:
    train_prompts, eval_prompts: token ids of each prompt (BOS included).
    reward: `(split, prompt index, completion ids without stop tokens) -> float`; a reward
      >= 1 counts as solved (pass@1), so format bonuses must stay below 1.
    stop_tokens: ids that end a completion.
    pad_id: padding id.
    max_prompt_len: prompt buffer length (longest prompt by default).
  """
  train_prompts: Sequence[Sequence[int]]
  eval_prompts: Sequence[Sequence[int]]
  reward: Callable[[str, int, Sequence[int]], float]
  stop_tokens: tuple[int, ...] = ()
  pad_id: int = 0
  max_prompt_len: int | None = None

  @functools.cached_property
  def prompt_len(self) -> int:
    """The prompt buffer length: max_prompt_len, or the longest prompt."""
    return self.max_prompt_len or max(map(len, (*self.train_prompts, *self.eval_prompts)))

  def encode(self, split: str, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded prompt buffers [P, L] and their masks."""
    prompts = self.train_prompts if split == "train" else self.eval_prompts
    length = self.prompt_len
    tokens = np.full((len(indices), length), self.pad_id, np.int32)
    mask = np.zeros((len(indices), length), np.int32)
    for row, i in enumerate(indices):
      ids = list(prompts[i])
      if len(ids) > length:
        raise ValueError(f"{split} prompt {i} has {len(ids)} tokens > max_prompt_len={length}")
      tokens[row, length - len(ids):], mask[row, length - len(ids):] = ids, 1
    return tokens, mask
