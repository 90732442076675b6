"""PPO on LMRL-Gym text games from the BC policy: `python -m experiments.ppo [--config ...]`.

The logic lives in `jaxlm.algos.online` / `jaxlm.algos.pg`; presets, runtimes and measured
results in experiments/configs/ppo.py.
"""

from experiments import launch
from jaxlm.algos import online

if __name__ == "__main__":
  launch.run(online, "ppo", "/tmp/jaxlm_ppo", online.results_table)
