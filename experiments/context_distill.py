"""Context distillation: `python -m experiments.context_distill --config
experiments/configs/context_distill.py`.

Kept short on purpose: the logic lives in `jaxlm.algos.context_distill_experiments`.
See experiments/configs/context_distill.py for presets, runtime and measured results.
"""

from experiments import launch
from jaxlm.algos import context_distill_experiments

if __name__ == "__main__":
  launch.run(context_distill_experiments, "context_distill", "/tmp/jaxlm_context_distill",
             context_distill_experiments.summary)
