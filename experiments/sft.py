"""Supervised next-token training: `python -m experiments.sft --config experiments/configs/sft.py`.

Kept short on purpose: the logic lives in `jaxlm.algos.sft` so it can be tested and imported
from a notebook. See experiments/configs/sft.py for presets, runtime and expected results.
"""

from absl import app, flags
from ml_collections import config_flags

from jaxlm import distributed
from jaxlm.algos import sft

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/sft.py", "ml_collections config file (file.py:preset).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/jaxlm_sft", "Output directory.")
_RESUME = flags.DEFINE_bool("resume", False, "Continue from the latest checkpoint in workdir.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  distributed.maybe_initialize()
  config = sft.Config.from_dict(_CONFIG.value.to_dict())
  results = sft.train_and_evaluate(config, _WORKDIR.value, resume=_RESUME.value)
  print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                 for k, v in results.items()))


if __name__ == "__main__":
  app.run(main)
