"""ILQL and its baselines on a text game: `python -m experiments.ilql [--config ...]`.

Kept short on purpose: the logic lives in `jaxlm.algos.ilql`, importable and testable in Colab;
see experiments/configs/ilql.py for presets, runtime and measured results.
"""

from experiments import launch
from jaxlm import evaluation
from jaxlm.algos import ilql

if __name__ == "__main__":
  launch.run(ilql, "ilql", "/tmp/jaxlm_ilql",
             evaluation.results_table)
