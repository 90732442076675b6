"""Scaling-fit pipelines behind `python -m experiments.fit_scaling`: config in, fits.json out.

Each pipeline reads its data (paths relative to `data.shared_data_dir()` unless absolute), fits
with the library's laws and writes PNG plots; `run` dispatches on the config's `kind` and writes
`<workdir>/fits.json` atomically. A config is any object with the fields its
`experiments/configs/scaling/*.py` file defines (attribute access).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jaxlm import files
from jaxlm.scaling import data, emergence, laws, plots, value_rl


def value_rl_fits(c, w: str) -> dict[str, Any]:
  """Rybkin et al. (2025): per-run data-efficiency and Pareto fits, sigma*; plots in `w`."""
  ref = files.read_json(data.data_path(c.data_dir) / "reference_outputs" / "fits_from_npy.json")
  hfit = value_rl.hparam_fit_from_reference(ref[c.bs_fit], ref[c.lr_fit])
  thr = value_rl.default_thresholds(c.threshold_low, c.threshold_high, c.num_thresholds)
  out = {}
  for run in c.runs:
    res = value_rl.run_pipeline(
        data.load_qscaled_zip(data.data_path(c.data_dir) / "raw_zips" / f"{run}.zip"),
        data.GYM_MAX_RETURN, thresholds=thr, hfit=hfit, n_params=c.n_params, delta=c.delta,
        num_fit=c.num_fit, num_bootstrap=c.num_bootstrap, seed=c.seed, interval=c.interval)
    out[run] = value_rl.result_to_json(res)
    plots.plot_data_efficiency(res, os.path.join(w, f"{run}_data_efficiency.png"), run)
    plots.plot_pareto(res, os.path.join(w, f"{run}_pareto.png"), run)
  out["sigma_star"] = out[c.sigma_star_run]["sigma_star"]
  return out


def chinchilla_fits(c, w: str) -> dict[str, Any]:
  """Hoffmann et al. (2022) approach 3 on a CSV of (N, FLOPs, loss); plot in `w`."""
  cols = data.load_csv(data.data_path(c.csv), numeric=(c.n_col, c.flop_col, c.loss_col))
  n = cols[c.n_col]
  d, loss = cols[c.flop_col] / (6.0 * n), cols[c.loss_col]
  res = laws.fit_chinchilla(
      n, d, loss, delta=c.delta, drop_highest=c.drop_highest,
      grid=laws.CHINCHILLA_COARSE_GRID if c.coarse_grid else None,
      num_bootstrap=c.num_bootstrap, bootstrap_starts=c.bootstrap_starts, seed=c.seed,
      interval=c.interval)
  plots.plot_chinchilla(n, d, loss, res, os.path.join(w, "chinchilla.png"))
  return {"chinchilla": res.to_json()}


def emergence_fits(c, w: str) -> dict[str, Any]:
  """Snell et al. (2024) emergence law on a CSV or synthetic points; plot in `w`."""
  if c.csv:
    names = ("loss", "data", "accuracy")
    cols = data.load_csv(data.data_path(c.csv), numeric=names)
    pts = tuple(cols[k] for k in names)
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


PIPELINES = {"value_rl": value_rl_fits, "chinchilla": chinchilla_fits,
             "emergence": emergence_fits}


def run(c, workdir: str) -> dict[str, Any]:
  """Runs the pipeline `c.kind`; writes `workdir/fits.json` and returns the fits."""
  if c.kind not in PIPELINES:
    raise ValueError(f"kind={c.kind!r}; expected one of {sorted(PIPELINES)}")
  os.makedirs(workdir, exist_ok=True)
  fits = PIPELINES[c.kind](c, workdir)
  files.write_json(os.path.join(workdir, "fits.json"), fits)
  return fits
