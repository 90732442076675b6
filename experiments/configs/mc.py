"""Monte-Carlo returns (BC logits + beta * Q_MC) on LMRL-Gym Maze.

Run: python -m experiments.mc --config experiments/configs/mc.py --workdir W
Expected (~4 min on 2 CPU cores): fully observed Maze, best beta clearly above BC.
Presets: smoke; wordle and wordle_smoke (the MC run of configs/ilql.py's presets).
"""

import ml_collections

from experiments.configs import bc
from experiments.configs import ilql


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = bc.get_config(preset if preset in bc.WORDLE + ("smoke",) else None)
  c.num_steps = 1000 if preset != "smoke" else 4  # MC updates
  c.bc_weight = 1.0               # BC term on the shared LM head
  c.betas = (1.0, 0.0, 4.0, 16.0) if preset != "smoke" else (1.0, 0.0)  # first is reported
  if preset in bc.WORDLE:  # the MC run of the ILQL preset
    base = ilql.get_config(preset)
    c.num_steps, c.betas = base.num_steps, base.betas
  elif preset not in (None, "", "smoke"):
    raise ValueError(f"unknown mc preset {preset!r}; expected smoke, wordle or wordle_smoke")
  return c
