"""Test-time compute on Countdown: `python -m experiments.search --config ...search.py:preset`.

Kept short on purpose: the logic lives in `jaxlm.algos.search` so it can be tested and imported
from a notebook. See experiments/configs/search.py for presets, runtime and expected results.
"""

from absl import app, flags
from ml_collections import config_flags

from jaxlm import distributed
from jaxlm.algos import search

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/search.py", "ml_collections config file (file.py:preset).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/jaxlm_search", "Output directory.")
_RESUME = flags.DEFINE_bool("resume", False, "Load trained models / continue from workdir.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  distributed.maybe_initialize()
  config = search.config_from_dict(_CONFIG.value.to_dict())
  results = search.train_and_evaluate(config, _WORKDIR.value, resume=_RESUME.value)
  print(search.results_table(results))


if __name__ == "__main__":
  app.run(main)
