r"""Rybkin et al. (2025) gym reproduction: D_J(sigma) fits and sigma*(F).

Run:

  python -m experiments.fit_scaling --config experiments/configs/scaling/value_rl_gym.py \
      --workdir /tmp/fit_gym

Expected runtime on 2 CPU cores: 5.5 min measured at load ~6 (two zips, each 100 seed
resamples x 10 thresholds x 125 starts); the `tiny` preset (no bootstrap) ~20 s.
Expected result (fits.json, measured): every (alpha, beta, d_min) of the reference
fits_from_npy.json["data_pareto_fit/gym_*.npy"] within 8e-7; median_median 210501 (gym_ours)
and 240251 (gym_baseline_utd2); sigma_star = 2.616e-9 * F^0.6198 for gym_ours.
PNGs: <run>_data_efficiency.png, <run>_pareto.png.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Preset `arg` in {None/"default", "tiny" (no bootstrap, CI smoke test)}."""
  c = ml_collections.ConfigDict()
  c.kind = "value_rl"  # which pipeline experiments.fit_scaling runs
  c.data_dir = "qscaled_rybkin2025"  # absolute, or relative to the shared data dir
  c.runs = ("gym_ours", "gym_baseline_utd2")  # zips in <data_dir>/raw_zips
  c.sigma_star_run = "gym_ours"  # run whose sigma*(F) is the top-level entry
  c.bs_fit = "grid_proposed_fits/gym_sweep/shared_bs_fit.npy"  # key in fits_from_npy.json
  c.lr_fit = "grid_proposed_fits/gym_sweep/shared_lr_fit.npy"  # key in fits_from_npy.json
  c.threshold_low = 300.0  # lowest return threshold J (0-1000 scale)
  c.threshold_high = 800.0  # highest return threshold J
  c.num_thresholds = 10  # J values, log-spaced in (1000 - J)
  c.n_params = 1.5e5  # critic parameters N in C = 10 N B sigma D
  c.delta = 4e9  # FLOPs per env step in the budget F = C + delta D
  c.num_fit = 8  # lowest thresholds used for sigma*(F); the rest held out
  c.num_bootstrap = 100  # seed resamples for parameter intervals (0 = none)
  c.interval = 0.9  # central mass of the intervals
  c.seed = 0  # bootstrap key
  if arg == "tiny":
    c.num_bootstrap = 0
  elif arg not in (None, "", "default"):
    raise ValueError(f"unknown preset {arg!r}")
  return c
