"""Online RL (GRPO and relatives): `python -m experiments.grpo --config ...grpo.py[:preset]`.

The logic lives in `jaxlm.algos.online` / `jaxlm.algos.pg`; presets, runtimes and measured
results in experiments/configs/grpo.py.
"""

from experiments import launch
from jaxlm.algos import online

if __name__ == "__main__":
  launch.run(online, "grpo", "/tmp/jaxlm_grpo", online.results_table)
