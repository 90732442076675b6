"""The task registry: each text game with its tokenizer, offline data and score normaliser.

A `Task` is what the generic trainer and evaluation need to know of an environment; they import
no concrete environment, only this registry. `make_task(env, tokenizer)` builds one by name;
`load_episodes` builds (or reads back) its offline dataset.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Callable

from absl import logging

from jaxlm.data import SimpleTokenizer, TextTrajectory, read_jsonl, write_jsonl
from jaxlm.envs import base as envs_base
from jaxlm.envs import maze as maze_lib
from jaxlm.envs import wordle as wordle_lib


@dataclasses.dataclass(frozen=True)
class Task:
  """An environment with its offline data, tokenizer and score normalisation."""
  name: str
  make_env: Callable[[], envs_base.TextEnv]
  tokenizer: SimpleTokenizer
  scores: envs_base.ScoreConstants
  max_steps: int
  candidates: tuple[str, ...] | None  # fixed action texts (reranking), None = free text
  build_dataset: Callable[[int, int], list[TextTrajectory]]
  max_action_tokens: int | None = None  # free text: cap on an action's generated tokens
  action_end: str = "\n"  # free text: the (one-token) text that ends every action


def _maze_task(fully_observed: bool, tokenizer: str) -> Task:
  env = maze_lib.Maze(fully_observed)
  return Task(
      name="maze_fo" if fully_observed else "maze_po",
      make_env=lambda: maze_lib.Maze(fully_observed),
      tokenizer=(SimpleTokenizer.phrases(maze_lib.PHRASES, env.texts()) if tokenizer == "phrase"
                 else SimpleTokenizer.words(env.texts())),
      scores=maze_lib.MAZE_SCORES, max_steps=env.max_steps,
      candidates=tuple(m + "\n" for m in maze_lib.MOVES),
      build_dataset=lambda n, seed: maze_lib.maze_dataset(n, seed,
                                                          fully_observed=fully_observed))


def _wordle_task(tokenizer: str, num_words: int = 0) -> Task:
  """Wordle on the shipped list, or on `word_subset(num_words)` when num_words > 0."""
  del tokenizer  # characters only
  words = wordle_lib.word_subset(num_words) if num_words else wordle_lib.load_words()
  return Task(name=f"wordle{num_words}" if num_words else "wordle",
              make_env=lambda: wordle_lib.Wordle(words), tokenizer=SimpleTokenizer.chars(),
              scores=wordle_lib.wordle_scores(num_words), max_steps=wordle_lib.MAX_GUESSES,
              candidates=None,
              build_dataset=lambda n, seed: wordle_lib.wordle_dataset(n, seed, words=words),
              max_action_tokens=len(wordle_lib.format_guess("a" * wordle_lib.N_LETTERS)))


TASKS: dict[str, Callable[..., Task]] = {  # env -> Task of a tokenizer level (and options)
    "maze_fo": functools.partial(_maze_task, True),
    "maze_po": functools.partial(_maze_task, False),
    "wordle": _wordle_task,
}
TOKENIZERS = {"maze_fo": ("phrase", "word"), "maze_po": ("phrase", "word"), "wordle": ("char",)}


def check_wordle_words(env: str, wordle_words: int) -> None:
  """Raises if `wordle_words` is set for another game or is not a valid subset size."""
  if not wordle_words:
    return
  if env != "wordle":
    raise ValueError(f"wordle_words={wordle_words} applies to env='wordle' only, not "
                     f"env={env!r}; leave it 0")
  try:
    wordle_lib.word_subset(wordle_words)
  except ValueError as e:
    raise ValueError(f"wordle_words={wordle_words!r}: {e}") from None


def make_task(env: str, tokenizer: str = "", wordle_words: int = 0) -> Task:
  """The task `env` with its tokenizer level (first of TOKENIZERS[env] when empty).

  `wordle_words` > 0 plays Wordle on a deterministic subset of the word list (`word_subset`).
  """
  check_wordle_words(env, wordle_words)
  options = {"num_words": wordle_words} if wordle_words else {}
  return TASKS[env](tokenizer or TOKENIZERS[env][0], **options)


def load_episodes(task: Task, num_trajectories: int, seed: int, workdir: str | None = None
                  ) -> list[TextTrajectory]:
  """The task's `num_trajectories` offline episodes of `seed`, cached as JSONL in `workdir`.

  A cache that cannot be read (corrupt or truncated: an error or fewer episodes than asked) is
  rebuilt, with a warning naming the file and the problem; the data are deterministic in `seed`.
  """
  path = workdir and os.path.join(workdir, f"{task.name}_{num_trajectories}_{seed}.jsonl")
  if path and os.path.exists(path):
    try:
      cached = read_jsonl(path)
      if len(cached) == num_trajectories:
        return cached
      problem = f"{len(cached)} episodes, expected {num_trajectories}"
    except ValueError as e:
      problem = str(e)
    logging.warning("rebuilding the corrupt cached dataset %s: %s", path, problem)
  t0 = time.perf_counter()
  trajectories = task.build_dataset(num_trajectories, seed)
  logging.info("built %d %s episodes in %.1fs", len(trajectories), task.name,
               time.perf_counter() - t0)
  if path:
    os.makedirs(workdir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"  # private to this process: concurrent runs may race
    write_jsonl(tmp, trajectories)
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written dataset
  return trajectories
