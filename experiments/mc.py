"""Monte-Carlo returns on a text game: `python -m experiments.mc [--config ...]`.

Kept short on purpose: the logic lives in `jaxlm.algos.mc`, importable and testable in Colab.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxlm import distributed
from jaxlm.algos import mc
from jaxlm.algos import offline

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/mc.py", "Config file (path.py[:preset]).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/jaxlm_mc", "Output directory.")
_RESUME = flags.DEFINE_bool("resume", False, "Continue the runs in --workdir.")


def main(argv):
  del argv
  distributed.maybe_initialize()
  offline.run_experiment(mc, _CONFIG.value.to_dict(), _WORKDIR.value, _RESUME.value)


if __name__ == "__main__":
  app.run(main)
