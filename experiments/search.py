"""Test-time compute on Countdown: `python -m experiments.search --config ...search.py:preset`.

Kept short on purpose: the logic lives in `jaxlm.algos.test_time` so it can be tested and
imported from a notebook. See experiments/configs/search.py for presets, runtime and expected
results.
"""

from experiments import launch
from jaxlm.algos import test_time

if __name__ == "__main__":
  launch.run(test_time, "experiments/configs/search.py", "/tmp/jaxlm_search",
             test_time.results_table)
