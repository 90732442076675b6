"""Behaviour cloning (or filtered BC with filter_fraction < 1) on LMRL-Gym Maze.

Run: python -m experiments.bc --config experiments/configs/bc.py[:filtered] --workdir W
Expected (~3 min on 2 CPU cores): fully observed Maze, BC samples the dataset's mostly random
behaviour (normalised score ~10-20); `filtered` (top 10% of episodes) scores ~70.
Presets: filtered, smoke; wordle and wordle_smoke (the BC run of configs/ilql.py's presets).
"""

import ml_collections

from experiments.configs import ilql


WORDLE = ("wordle", "wordle_smoke")  # presets taken from configs/ilql.py


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  base = ilql.get_config(preset if preset in WORDLE + ("smoke",) else None)
  keep = ("seed", "env", "tokenizer", "num_trajectories", "filter_fraction", "max_len",
          "window_transitions", "gamma", "model", "hf_model", "batch_size", "lr", "warmup", "weight_decay", "clip", "eval_episodes",
          "eval_temperature", "log_every", "checkpoint_every", "mesh", "wordle_words")
  c = ml_collections.ConfigDict({k: base[k] for k in keep})
  c.num_steps = base.bc_steps     # BC updates
  if preset == "filtered":
    c.filter_fraction = 0.1       # keep the best 10% of episodes by return
  elif preset not in (None, "", "smoke") + WORDLE:
    raise ValueError(f"unknown bc preset {preset!r}; expected filtered, smoke, wordle or "
                     "wordle_smoke")
  return c
