"""Monte-Carlo returns on a text game: `python -m experiments.mc [--config ...]`.

Kept short on purpose: the logic lives in `jaxlm.algos.mc`, importable and testable in Colab;
see experiments/configs/mc.py for presets, runtime and measured results.
"""

from experiments import launch
from jaxlm import evaluation
from jaxlm.algos import mc

if __name__ == "__main__":
  launch.run(mc, "mc", "/tmp/jaxlm_mc",
             evaluation.results_table)
