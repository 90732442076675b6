"""Monte-Carlo returns (BC logits + beta * Q_MC) on LMRL-Gym Maze.

Run: python -m experiments.mc --config experiments/configs/mc.py --workdir W
Expected (~4 min on 2 CPU cores): fully observed Maze, best beta clearly above BC.
"""

import ml_collections

from experiments.configs import bc


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = bc.get_config(preset if preset == "smoke" else None)
  c.num_steps = 1000 if preset != "smoke" else 4  # MC updates
  c.bc_weight = 1.0               # BC term on the shared LM head
  c.betas = (1.0, 0.0, 4.0, 16.0) if preset != "smoke" else (1.0, 0.0)  # first is reported
  if preset not in (None, "", "smoke"):
    raise ValueError(f"unknown mc preset {preset!r}; expected smoke")
  return c
