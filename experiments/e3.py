"""e3 on Countdown: `python -m experiments.e3 --config experiments/configs/e3.py[:preset]`.

The logic lives in `jaxlm.algos.e3`; presets, runtimes and measured results in
experiments/configs/e3.py.
"""

from experiments import launch
from jaxlm.algos import e3

if __name__ == "__main__":
  launch.run(e3, "e3", "/tmp/jaxlm_e3", e3.summary)
