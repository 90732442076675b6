"""Supervised next-token training: `python -m experiments.sft --config experiments/configs/sft.py`.

Kept short on purpose: the logic lives in `jaxlm.algos.sft` so it can be tested and imported
from a notebook. See experiments/configs/sft.py for presets, runtime and expected results.
"""

from experiments import launch
from jaxlm.algos import sft

if __name__ == "__main__":
  launch.run(sft, "sft", "/tmp/jaxlm_sft", sft.summary)
