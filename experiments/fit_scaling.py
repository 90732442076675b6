"""Scaling-law fits: `python -m experiments.fit_scaling --config <cfg.py> --workdir W`.

Configs in experiments/configs/scaling/: value_rl_gym.py (Rybkin et al. 2025), chinchilla.py
(Hoffmann et al. 2022 approach 3), emergence.py (Snell et al. 2024). Writes W/fits.json (every
fitted parameter with its interval) and PNG plots. The logic lives in jaxlm.scaling.
"""

import json
import os

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from jaxlm.scaling import data, emergence, laws, plots, value_rl

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/jaxlm_fit_scaling", "Output directory.")


def _value_rl(c, w):
  ref = data.load_json(os.path.join(c.data_dir, "reference_outputs", "fits_from_npy.json"))
  hfit = value_rl.hparam_fit_from_reference(ref[c.bs_fit], ref[c.lr_fit])
  thr = value_rl.default_thresholds(c.threshold_low, c.threshold_high, c.num_thresholds)
  out = {}
  for run in c.runs:
    res = value_rl.run_pipeline(
        data.load_qscaled_zip(os.path.join(c.data_dir, "raw_zips", f"{run}.zip")),
        data.GYM_MAX_RETURN, thresholds=thr, hfit=hfit, n_params=c.n_params, delta=c.delta,
        num_fit=c.num_fit, num_bootstrap=c.num_bootstrap, seed=c.seed, interval=c.interval)
    out[run] = value_rl.result_to_json(res)
    plots.plot_data_efficiency(res, os.path.join(w, f"{run}_data_efficiency.png"), run)
    plots.plot_pareto(res, os.path.join(w, f"{run}_pareto.png"), run)
  out["sigma_star"] = out[c.sigma_star_run]["sigma_star"]
  return out


def _chinchilla(c, w):
  cols = data.load_csv(c.csv)
  n = cols[c.n_col]
  d, loss = cols[c.flop_col] / (6.0 * n), cols[c.loss_col]
  res = laws.fit_chinchilla(
      n, d, loss, delta=c.delta, drop_highest=c.drop_highest,
      grid=laws.CHINCHILLA_COARSE_GRID if c.coarse_grid else None,
      num_bootstrap=c.num_bootstrap, bootstrap_starts=c.bootstrap_starts, seed=c.seed,
      interval=c.interval)
  plots.plot_chinchilla(n, d, loss, res, os.path.join(w, "chinchilla.png"))
  return {"chinchilla": res.to_json()}


def _emergence(c, w):
  if c.csv:
    cols = data.load_csv(c.csv)
    pts = cols["loss"], cols["data"], cols["accuracy"]
  else:
    true = dict(A=0.6, k=0.02, alpha=1.5, E0=2.0, B=0.25)
    pts = emergence.synthetic_points(
        true, np.linspace(c.synthetic_loss_low, c.synthetic_loss_high, 16),
        [1e2, 1e3, 1e4, 1e5], form=c.form, d0=c.d0, seed=c.seed)
  res = emergence.fit_emergence(
      *pts, form=c.form, d0=c.d0, chance=None if c.chance < 0 else c.chance,
      num_bootstrap=c.num_bootstrap, num_chains=c.num_chains, num_mcmc=c.num_mcmc, seed=c.seed)
  plots.plot_emergence(*pts, res, os.path.join(w, "emergence.png"))
  return {"emergence": res.to_json()}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  c, w = _CONFIG.value, _WORKDIR.value
  os.makedirs(w, exist_ok=True)
  fits = {"value_rl": _value_rl, "chinchilla": _chinchilla, "emergence": _emergence}[c.kind](c, w)
  with open(os.path.join(w, "fits.json"), "w") as f:
    json.dump(fits, f, indent=1)
  print(json.dumps(fits.get("sigma_star") or next(iter(fits.values())).get("params"), indent=1))


if __name__ == "__main__":
  app.run(main)
