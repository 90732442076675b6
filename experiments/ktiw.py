"""KTIW and single-head attention dynamics: `python -m experiments.ktiw --config
experiments/configs/ktiw.py --workdir /tmp/ktiw`.

Kept short on purpose: the logic lives in `jaxlm.algos.ktiw` so it can be tested and imported
from a notebook. See experiments/configs/ktiw.py for presets, runtime and measured results.
"""

from experiments import launch
from jaxlm.algos import ktiw

if __name__ == "__main__":
  launch.run(ktiw, "ktiw", "/tmp/jaxlm_ktiw", ktiw.summary)
