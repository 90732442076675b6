r"""Chinchilla approach 3 (Hoffmann et al. 2022) re-fitted as Besiroglu et al. (2024).

Run:

  python -m experiments.fit_scaling --config experiments/configs/scaling/chinchilla.py \
      --workdir /tmp/fit_chinchilla

Expected runtime on 2 CPU cores: ~2-4 min for the default 5400-start grid (15 screening
L-BFGS steps each, 64 refined; 100 bootstrap refits from the 4 best optima; estimate, not
re-measured after the last optimiser change); the `coarse` preset (243 starts) took 17 s.
Expected result (coarse, measured): E=1.817, A=477.8, B=2143, alpha=0.3473, beta=0.3672;
90% bootstrap intervals E [1.78, 1.88], alpha [0.317, 0.369], beta [0.338, 0.411]
(Besiroglu et al. report 1.82, 482, 2085, 0.348, 0.366). PNG: chinchilla.png.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Preset `arg` in {None/"default", "coarse"}."""
  c = ml_collections.ConfigDict()
  c.kind = "chinchilla"  # which pipeline experiments.fit_scaling runs
  c.csv = "chinchilla_besiroglu2024/svg_extracted_data.csv"  # or absolute; see data_path
  c.n_col = "Model Size"  # column with parameters N
  c.flop_col = "Training FLOP"  # tokens D = FLOP / (6 N)
  c.loss_col = "loss"  # column with final loss
  c.drop_highest = 5  # drop the k highest-loss runs (Besiroglu et al. drop 5)
  c.delta = 1e-3  # Huber delta on log-loss residuals
  c.coarse_grid = False  # 3^5 = 243 starts instead of the 5400-start grid
  c.num_bootstrap = 100  # point resamples for intervals (0 = none)
  c.bootstrap_starts = 4  # resamples start from this many best full-data optima
  c.interval = 0.9  # central mass of the intervals
  c.seed = 0  # bootstrap key
  if arg == "coarse":
    c.coarse_grid = True
  elif arg not in (None, "", "default"):
    raise ValueError(f"unknown preset {arg!r}")
  return c
