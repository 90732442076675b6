"""Text environments (TextEnv protocol), scripted policies and offline dataset builders."""

from jaxlm.envs.base import (History, PolicyFn, ScoreConstants, TextEnv,
                             mean_confidence_interval, normalized_score, rollout)
from jaxlm.envs.maze import MAZE_SCORES, Maze, maze_dataset, random_policy, solver_policy
from jaxlm.envs.wordle import (WORDLE_SCORES, Wordle, WordleSolver, info_gain_policy,
                               load_words, random_mixture_policy, wordle_dataset)

from jaxlm.envs.countdown import CountdownConfig, CountdownEnv, Problem

__all__ = [
    "CountdownConfig", "CountdownEnv", "History", "Problem", "MAZE_SCORES", "Maze", "PolicyFn",
    "ScoreConstants", "TextEnv", "WORDLE_SCORES", "Wordle", "WordleSolver", "info_gain_policy",
    "load_words", "maze_dataset", "mean_confidence_interval", "normalized_score",
    "random_mixture_policy", "random_policy", "rollout", "solver_policy", "wordle_dataset",
]
