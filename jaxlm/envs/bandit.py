"""A prompt -> k-token bandit: the smallest task on which online RL must learn.

Prompt p (one symbol after BOS) has a hidden target string of `length` symbols; a completion
earns the fraction of its first `length` tokens that match the target position by position (1
= solved). A random policy over V symbols earns 1 / V per token, and the optimum is exact
recall of P strings, so a learning curve from ~1/V to >= 0.9 is an end-to-end test of rollouts,
advantages, the clipped update and the optimizer together.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxlm.envs.base import PromptTask

PAD, BOS, FIRST = 0, 1, 2  # ids; symbols are FIRST .. FIRST + num_symbols - 1


def targets(num_prompts: int, num_symbols: int, length: int, seed: int = 0) -> np.ndarray:
  """[P, length] target symbol ids of each prompt."""
  rng = np.random.default_rng(seed)
  return FIRST + rng.integers(0, num_symbols, (num_prompts, length))


def reward(target: np.ndarray, completion: Sequence[int]) -> float:
  """Fraction of the target's positions the completion gets right."""
  got = np.asarray(list(completion)[:len(target)] + [-1] * (len(target) - len(completion)))
  return float(np.mean(got == target))


def task(num_prompts: int = 4, num_symbols: int = 6, length: int = 3, seed: int = 0
         ) -> PromptTask:
  """The bandit as a `PromptTask` (train and eval prompts are the same P prompts); the
  vocabulary is FIRST + num_symbols ids and completions are exactly `length` tokens long."""
  goal = targets(num_prompts, num_symbols, length, seed)
  prompts = [[BOS, FIRST + p % num_symbols] if num_prompts <= num_symbols
             else [BOS, FIRST + p // num_symbols, FIRST + p % num_symbols]
             for p in range(num_prompts)]
  return PromptTask(train_prompts=prompts, eval_prompts=prompts,
                    reward=lambda split, i, ids: reward(goal[i], ids), pad_id=PAD)


def vocab_size(num_symbols: int = 6) -> int:
  return FIRST + num_symbols
