"""Monte-Carlo returns (BC logits + beta * Q_MC) on LMRL-Gym Maze.

Run: python -m experiments.mc --config experiments/configs/mc.py --workdir W
Expected (~4 min on 2 CPU cores): fully observed Maze, best beta clearly above BC.
Presets: smoke; wordle and wordle_smoke (the MC run of configs/ilql.py's presets, which is the
MC baseline of `jaxlm.algos.ilql.baseline_configs`). The Maze presets run 1000 updates (smoke: 4)
with betas (1, 0, 4, 16) (smoke: (1, 0)); the first beta is reported.
"""

from experiments.configs import bc as bc_configs
from jaxlm import config as config_lib
from jaxlm.algos import ilql


PRESETS = (None, "smoke") + bc_configs.WORDLE

def get_config(preset: str | None = None):
  if preset not in (None, "", "smoke") + bc_configs.WORDLE:
    raise ValueError(f"unknown mc preset {preset!r}; expected smoke, wordle or wordle_smoke")
  c = config_lib.config_dict(ilql.baseline_configs(bc_configs.ilql_config(preset))["mc"])
  if preset not in bc_configs.WORDLE:
    c.train.num_steps = 1000 if preset != "smoke" else 4  # MC updates
    c.betas = (1.0, 0.0, 4.0, 16.0) if preset != "smoke" else (1.0, 0.0)  # first is reported
  return c
