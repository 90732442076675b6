"""Behaviour cloning (or filtered BC) on a text game: `python -m experiments.bc [--config ...]`.

Kept short on purpose: the logic lives in `jaxlm.algos.bc`, importable and testable in Colab;
see experiments/configs/bc.py for presets, runtime and measured results.
"""

from experiments import launch
from jaxlm import evaluation
from jaxlm.algos import bc

if __name__ == "__main__":
  launch.run(bc, "bc", "/tmp/jaxlm_bc",
             evaluation.results_table)
