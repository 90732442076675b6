"""CALM ablation on synthetic flight booking: `python -m experiments.calm --config
experiments/configs/calm.py --workdir W`.

Kept short on purpose: the logic lives in `jaxlm.algos.calm` so it can be tested and imported
from a notebook. See experiments/configs/calm.py for presets, runtime and measured results.
"""

from experiments import launch
from jaxlm.algos import calm

if __name__ == "__main__":
  launch.run(calm, "calm", "/tmp/jaxlm_calm", calm.summary)
