"""Adaptive Parallel Reasoning on Countdown:
`python -m experiments.apr --config experiments/configs/apr.py[:preset]`.

The logic lives in `jaxlm.algos.apr`; presets, runtimes and measured results in
experiments/configs/apr.py.
"""

from experiments import launch
from jaxlm.algos import apr

if __name__ == "__main__":
  launch.run(apr, "apr", "/tmp/jaxlm_apr", apr.summary)
