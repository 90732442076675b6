"""Scaling-law fits: `python -m experiments.fit_scaling --config <cfg.py> --workdir W`.

Configs in experiments/configs/scaling/: value_rl_gym.py (Rybkin et al. 2025), chinchilla.py
(Hoffmann et al. 2022 approach 3), emergence.py (Snell et al. 2024). Writes W/fits.json (every
fitted parameter with its interval) and PNG plots. The logic lives in jaxlm.scaling.pipelines.
"""

import json

from absl import app, flags
from ml_collections import config_flags

from jaxlm.scaling import pipelines

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/jaxlm_fit_scaling", "Output directory.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  fits = pipelines.run(_CONFIG.value, _WORKDIR.value)
  print(json.dumps(fits.get("sigma_star") or next(iter(fits.values())).get("params"), indent=1))


if __name__ == "__main__":
  app.run(main)
