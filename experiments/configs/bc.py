"""Behaviour cloning (or filtered BC with filter_fraction < 1) on LMRL-Gym Maze.

Run: python -m experiments.bc --config experiments/configs/bc.py[:filtered] --workdir W
Expected (~3 min on 2 CPU cores): fully observed Maze, BC samples the dataset's mostly random
behaviour (normalised score ~10-20); `filtered` (top 10% of episodes) scores ~70.
Presets: filtered, smoke; wordle and wordle_smoke (the BC run of configs/ilql.py's presets).
The settings are those of the BC baseline of the matching ILQL preset
(`jaxlm.algos.ilql.baseline_configs`), so every offline field follows configs/ilql.py.
"""

from experiments.configs import ilql as ilql_configs
from jaxlm import config as config_lib
from jaxlm.algos import ilql

WORDLE = ("wordle", "wordle_smoke")  # presets taken from configs/ilql.py


def ilql_config(preset: str | None) -> ilql.Config:
  """The ILQL config whose baselines a bc / mc preset runs."""
  base = ilql_configs.get_config(preset if preset in WORDLE + ("smoke",) else None)
  return config_lib.from_dict(ilql.Config, base.to_dict())


PRESETS = (None, "filtered", "smoke") + WORDLE

def get_config(preset: str | None = None):
  if preset not in (None, "", "filtered", "smoke") + WORDLE:
    raise ValueError(f"unknown bc preset {preset!r}; expected filtered, smoke, wordle or "
                     "wordle_smoke")
  name = "filtered_bc" if preset == "filtered" else "bc"
  return config_lib.config_dict(ilql.baseline_configs(ilql_config(preset))[name])
