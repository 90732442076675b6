"""Value-based deep RL scaling laws (Rybkin, Nauman, Fu et al. 2025).

Pipeline ("Value-Based Deep RL Scales Predictably", Sec. 4-5 and the qscaled
code's conventions):
  1. learning curve -> seed mean -> isotonic (PAV) fit -> first logged step
     whose fit reaches each return threshold J (`crossing_times`); seeds are
     bootstrapped for the spread (`bootstrap_crossing_times`);
  2. per-environment median normalisation (`median_normalise`);
  3. data efficiency D_J(sigma) = D_min + (beta / sigma)^alpha per threshold
     (`fit_data_efficiency`, 125-start grid, MSE, L-BFGS);
  4. best batch size / learning rate vs UTD sigma: power laws with a shared
     slope and per-env intercepts, from bootstrap-averaged grid argmins
     (`bootstrap_grid_argmin`, `fit_hparam_laws`, `propose_hparams`);
  5. compute C_J(sigma) = k N B*(sigma) sigma D_J(sigma) (k = 10 as in the
     paper's code), budget F = C + delta D, budget-optimal sigma*_J on a sigma
     grid, and sigma*(F) = coef F^exponent fitted on the lowest thresholds with
     the top ones held out (`budget_optimal_utd`, `fit_sigma_star`).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from jaxlm.scaling import fit as fit_lib
from jaxlm.scaling import laws

# The qscaled 125-point start grid for D_J(sigma) = c + (sigma / b)^(-a).
REFERENCE_GRID = {"a": (-2.0, -1.2, -0.4, 0.4, 1.2),
                  "b": (0.0, 0.2, 0.4, 0.6, 0.8),
                  "c": (-2.0, -1.2, -0.4, 0.4, 1.2)}
COMPUTE_K = 10.0  # FLOPs per (parameter x sample) in C = k N B sigma D.


def default_thresholds(low: float = 300.0, high: float = 800.0,
                       num: int = 10, top: float = 1000.0) -> np.ndarray:
  """J_i = top - logspace(log10(top - low), log10(top - high), num)."""
  return top - np.logspace(np.log10(top - low), np.log10(top - high), num)


def isotonic_increasing(y_T):
  """Non-decreasing least-squares fit (pool adjacent violators), jittable.

  A stack of (block mean, block size) is kept in fixed-size arrays inside a
  `lax.scan`; each new point is pushed and merged back while it violates order.

  Args:
    y_T: values in order of the (strictly increasing) abscissa.

  Returns:
    iso_T, the isotonic regression of y with unit weights.
  """
  chex.assert_rank(y_T, 1)
  t = y_T.shape[0]

  def push(carry, y):
    val_T, wt_T, n = carry
    val_T, wt_T, n = val_T.at[n].set(y), wt_T.at[n].set(1.0), n + 1

    def violates(c):
      v, _, m = c
      return (m > 1) & (v[m - 2] > v[m - 1])

    def merge(c):
      v, w, m = c
      wt = w[m - 2] + w[m - 1]
      mean = (v[m - 2] * w[m - 2] + v[m - 1] * w[m - 1]) / wt
      return v.at[m - 2].set(mean), w.at[m - 2].set(wt), m - 1

    return jax.lax.while_loop(violates, merge, (val_T, wt_T, n)), None

  zeros = jnp.zeros_like(y_T)
  (val_T, wt_T, n), _ = jax.lax.scan(push, (zeros, zeros, 0), y_T)
  wt_T = jnp.where(jnp.arange(t) < n, wt_T, 0.0)
  block_T = jnp.searchsorted(jnp.cumsum(wt_T), jnp.arange(t), side="right")
  return val_T[block_T]


def first_crossing(steps_T, curve_T, thresholds_J):
  """First step whose curve value is >= J, NaN where never reached."""
  hit_JxT = curve_T[None, :] >= thresholds_J[:, None]
  idx_J = jnp.argmax(hit_JxT, axis=1)
  return jnp.where(jnp.any(hit_JxT, axis=1), steps_T[idx_J], jnp.nan)


def _check_curve(steps_T, returns_TxS):
  steps_T = np.asarray(steps_T, np.float64)
  returns_TxS = np.asarray(returns_TxS, np.float64)
  if returns_TxS.ndim != 2 or steps_T.shape != returns_TxS.shape[:1]:
    raise ValueError(f"curve: steps {steps_T.shape} and returns "
                     f"{returns_TxS.shape} must be (T,) and (T, S).")
  if np.any(np.diff(steps_T) <= 0):
    raise ValueError("curve: steps must be strictly increasing.")
  bad = np.argwhere(~np.isfinite(returns_TxS))
  if bad.size:
    raise ValueError(f"curve: non-finite return at (t, seed) {tuple(bad[0])}.")
  return steps_T, returns_TxS


def _crossings_host(steps_T, mean_T, thresholds_J):
  """Host PAV (scipy's C++ isotonic_regression, ~20 us per 4000 points)."""
  iso_T = scipy.optimize.isotonic_regression(mean_T, increasing=True).x
  hit_JxT = iso_T[None, :] >= np.asarray(thresholds_J, np.float64)[:, None]
  return np.where(hit_JxT.any(axis=1), steps_T[np.argmax(hit_JxT, axis=1)],
                  np.nan)


def crossing_times(steps_T, returns_TxS, thresholds_J, scale: float = 1.0):
  """Steps to reach each threshold from the isotonic fit of the seed mean.

  The isotonic fit runs on the host (scipy); `isotonic_increasing` is the
  jittable JAX equivalent (tested to agree), for use inside jit/vmap.

  Args:
    steps_T: env steps of each logged point (strictly increasing).
    returns_TxS: raw returns per seed.
    thresholds_J: return thresholds (after scaling).
    scale: returns are multiplied by it (e.g. 1000 / max_return).

  Returns:
    times_J (NaN where never reached), numpy float64.
  """
  steps_T, returns_TxS = _check_curve(steps_T, returns_TxS)
  return _crossings_host(steps_T, returns_TxS.mean(axis=1) * scale,
                         thresholds_J)


def bootstrap_crossing_times(steps_T, returns_TxS, thresholds_J, *,
                             scale: float = 1.0, num: int = 100, seed: int = 0):
  """Crossing times for `num` resamples of the seeds (with replacement).

  Returns:
    times (num, J), NaN where a resample never reaches a threshold; the
    resamples are fixed by `seed` (numpy Generator).
  """
  steps_T, returns_TxS = _check_curve(steps_T, returns_TxS)
  s = returns_TxS.shape[1]
  idx_BxS = np.random.default_rng(seed).integers(0, s, (num, s))
  return np.stack([
      _crossings_host(steps_T, returns_TxS[:, i].mean(axis=1) * scale,
                      thresholds_J) for i in idx_BxS])


def median_normalise(times_ExUxJ):
  """Per-env median normalisation (Rybkin et al. 2025, Sec. 5 aggregation).

  Args:
    times_ExUxJ: crossing times per env, UTD and threshold (NaN allowed).

  Returns:
    (normalised mean over envs (U, J), per-env medians (E,), median_median),
    where median_median = median of the env medians (multiplies back to steps).
  """
  times_ExUxJ = np.asarray(times_ExUxJ, np.float64)
  chex.assert_rank(times_ExUxJ, 3)
  med_E = np.nanmedian(times_ExUxJ.reshape(times_ExUxJ.shape[0], -1), axis=1)
  if np.any(~np.isfinite(med_E)):
    raise ValueError(f"median_normalise: env(s) {np.nonzero(~np.isfinite(med_E))[0]}"
                     " never reach any threshold.")
  norm_UxJ = np.mean(times_ExUxJ / med_E[:, None, None], axis=0)
  return norm_UxJ, med_E, float(np.median(med_E))


@dataclasses.dataclass(frozen=True)
class DataEfficiencyFit:
  """Per-threshold D_J(sigma) = d_min + (beta / sigma)^alpha (normalised units)."""

  thresholds: np.ndarray
  alpha: np.ndarray
  beta: np.ndarray
  d_min: np.ndarray
  loss: np.ndarray
  n_finite_starts: np.ndarray

  def predict(self, sigma_U):
    """D_J(sigma) (J, U) in normalised units."""
    sigma_U = np.asarray(sigma_U, np.float64)
    return (self.d_min[:, None]
            + (self.beta[:, None] / sigma_U[None, :]) ** self.alpha[:, None])


def fit_data_efficiency(utd_U, times_UxJ, thresholds_J, *, grid=None,
                        num_steps: int = 100) -> DataEfficiencyFit:
  """Fits D_J(sigma) for every threshold in one vmapped multi-start call.

  Rybkin et al. (2025) eq. (data efficiency): D_J(sigma) = D_min + (beta /
  sigma)^alpha; plain MSE, 125-point grid, damped Gauss-Newton (the paper: L-BFGS), best
  start wins. Missing
  (NaN) times get zero weight.

  Args:
    utd_U: UTD ratios sigma.
    times_UxJ: (normalised) steps to threshold.
    thresholds_J: threshold values (kept for reporting).
    grid: start grid {a, b, c} (default REFERENCE_GRID).
    num_steps: solver iterations (`fit_many`, solver "auto": damped Gauss-Newton).

  Returns:
    DataEfficiencyFit.
  """
  utd_U = np.asarray(utd_U, np.float64)
  times_UxJ = np.asarray(times_UxJ, np.float64)
  chex.assert_shape(times_UxJ, (utd_U.shape[0], len(thresholds_J)))
  finite_JxU = np.isfinite(times_UxJ.T)
  if np.any(finite_JxU.sum(1) < 3):
    raise ValueError("fit_data_efficiency: thresholds "
                     f"{np.nonzero(finite_JxU.sum(1) < 3)[0]} have < 3 points.")
  starts = fit_lib.grid_starts(laws.POWER_LAW, grid or REFERENCE_GRID)
  p, loss_J, nfin_J = fit_lib.fit_many(
      laws.POWER_LAW, utd_U, np.where(finite_JxU, times_UxJ.T, 0.0), starts,
      weights_KxN=finite_JxU.astype(np.float64), num_steps=num_steps)
  return DataEfficiencyFit(np.asarray(thresholds_J, np.float64), p["a"], p["b"],
                           p["c"], loss_J, nfin_J)


def bootstrap_grid_argmin(times_BxH, values_HxK):
  """Bootstrap-averaged grid argmin (Rybkin et al. 2025, hyperparameter fits).

  For every bootstrap sample b the grid point with the lowest time wins; the
  winners' values are averaged in log space over samples (geometric mean).

  Args:
    times_BxH: time to threshold per bootstrap sample and grid point (NaN =
      never reached).
    values_HxK: positive hyperparameter values of each grid point (e.g. batch
      size, learning rate).

  Returns:
    (K,) geometric-mean best values.
  """
  times_BxH = np.asarray(times_BxH, np.float64)
  values_HxK = np.asarray(values_HxK, np.float64)
  chex.assert_rank([times_BxH, values_HxK], 2)
  if np.any(np.all(~np.isfinite(times_BxH), axis=1)):
    raise ValueError("bootstrap_grid_argmin: a sample reaches no grid point.")
  best_B = np.nanargmin(times_BxH, axis=1)
  return np.exp(np.mean(np.log(values_HxK[best_B]), axis=0))


@dataclasses.dataclass(frozen=True)
class HparamFit:
  """log10 h = slope * log10 sigma + intercept[env], for batch size and lr."""

  bs_slope: float
  bs_intercepts: dict[str, float]
  lr_slope: float
  lr_intercepts: dict[str, float]


def fit_hparam_laws(utd_N, batch_size_N, learning_rate_N,
                    env_N: Sequence[str]) -> HparamFit:
  """Shared-slope power laws for best batch size and lr vs UTD (per-env icpts)."""
  bs_slope, bs_icpt, _ = laws.fit_shared_slope(utd_N, batch_size_N, env_N)
  lr_slope, lr_icpt, _ = laws.fit_shared_slope(utd_N, learning_rate_N, env_N)
  return HparamFit(bs_slope, bs_icpt, lr_slope, lr_icpt)


def hparam_fit_from_reference(bs: Mapping, lr: Mapping | None = None) -> HparamFit:
  """HparamFit from qscaled `{log10_slope: {env: s}, log10_intercept: {...}}`."""
  def unpack(d):
    slopes = set(d["log10_slope"].values())
    if len(slopes) != 1:
      raise ValueError("hparam_fit_from_reference: slopes are not shared.")
    return slopes.pop(), dict(d["log10_intercept"])
  bs_slope, bs_icpt = unpack(bs)
  lr_slope, lr_icpt = unpack(lr) if lr is not None else (np.nan, {})
  return HparamFit(bs_slope, bs_icpt, lr_slope, lr_icpt)


def propose_hparams(hfit: HparamFit, sigma, env: str) -> tuple[float, float]:
  """(batch size, learning rate) predicted for UTD sigma in `env`."""
  if env not in hfit.bs_intercepts:
    raise ValueError(f"propose_hparams: unknown env {env!r}.")
  ls = np.log10(sigma)
  bs = 10 ** (hfit.bs_intercepts[env] + hfit.bs_slope * ls)
  lr = 10 ** (hfit.lr_intercepts.get(env, np.nan) + hfit.lr_slope * ls)
  return bs, lr


def mean_batch_size(hfit: HparamFit, sigma_U) -> np.ndarray:
  """B*(sigma): mean over envs of the predicted batch sizes."""
  ls_U = np.log10(np.asarray(sigma_U, np.float64))
  return np.mean([10 ** (i + hfit.bs_slope * ls_U)
                  for i in hfit.bs_intercepts.values()], axis=0)


def compute_cost(n_params, batch_size, sigma, data, k: float = COMPUTE_K):
  """C = k * N * B * sigma * D (Rybkin et al. 2025, compute definition)."""
  return k * n_params * batch_size * sigma * data


@dataclasses.dataclass(frozen=True)
class BudgetOptimum:
  """Per-threshold budget-optimal UTD and the curves it was read from."""

  sigma_grid: np.ndarray
  data_JxU: np.ndarray     # D_J(sigma) in env steps.
  compute_JxU: np.ndarray  # C_J(sigma) in FLOPs.
  sigma_star: np.ndarray   # (J,) argmin of F = C + delta D.
  budget_star: np.ndarray  # (J,) F at sigma_star.
  data_star: np.ndarray
  compute_star: np.ndarray


def budget_optimal_utd(de_fit: DataEfficiencyFit, median_median: float,
                       hfit: HparamFit, *, n_params: float, delta: float,
                       sigma_grid=None, k: float = COMPUTE_K) -> BudgetOptimum:
  """sigma*_J = argmin_sigma C_J(sigma) + delta D_J(sigma) on a log grid.

  Args:
    de_fit: data-efficiency fit in median-normalised units.
    median_median: converts normalised times back to env steps.
    hfit: batch-size law (B*(sigma) = mean over envs of its predictions).
    n_params: critic parameters N.
    delta: cost of one env step in FLOPs (budget F = C + delta D).
    sigma_grid: candidate UTDs (default 100 log-spaced in [0.25, 16]).
    k: FLOPs factor in C = k N B sigma D.

  Returns:
    BudgetOptimum.
  """
  if sigma_grid is None:
    sigma_grid = np.logspace(np.log10(0.25), np.log10(16.0), 100)
  sigma_U = np.asarray(sigma_grid, np.float64)
  data_JxU = de_fit.predict(sigma_U) * median_median
  comp_JxU = compute_cost(n_params, mean_batch_size(hfit, sigma_U)[None],
                          sigma_U[None], data_JxU, k)
  budget_JxU = comp_JxU + delta * data_JxU
  i_J = np.argmin(budget_JxU, axis=1)
  r = np.arange(len(i_J))
  return BudgetOptimum(sigma_U, data_JxU, comp_JxU, sigma_U[i_J],
                       budget_JxU[r, i_J], data_JxU[r, i_J], comp_JxU[r, i_J])


def pareto_mask(data_U, compute_U) -> np.ndarray:
  """True where no other point has both less data and less compute."""
  d, c = np.asarray(data_U), np.asarray(compute_U)
  dominated = ((d[None] <= d[:, None]) & (c[None] <= c[:, None])
               & ((d[None] < d[:, None]) | (c[None] < c[:, None])))
  return ~np.any(dominated, axis=1)


def fit_sigma_star(budget_J, sigma_J, num_fit: int = 8) -> dict:
  """log-log line sigma* = coef * F^exponent through the lowest `num_fit`.

  The remaining (top) thresholds are held out: their relative prediction errors
  check extrapolation.

  Returns:
    {"coef", "exponent", "heldout_rel_error": list}.
  """
  lf, ls = np.log10(np.asarray(budget_J)), np.log10(np.asarray(sigma_J))
  if not 2 <= num_fit <= len(lf):
    raise ValueError(f"fit_sigma_star: num_fit={num_fit} not in [2, {len(lf)}].")
  exponent, icpt = np.polyfit(lf[:num_fit], ls[:num_fit], 1)
  pred = 10 ** (icpt + exponent * lf[num_fit:])
  return {"coef": float(10 ** icpt), "exponent": float(exponent),
          "heldout_rel_error": (pred / 10 ** ls[num_fit:] - 1).tolist()}


@dataclasses.dataclass(frozen=True)
class ValueRLResult:
  """Everything the gym reproduction reports."""

  envs: tuple[str, ...]
  utds: np.ndarray
  times_ExUxJ: np.ndarray
  normalised_UxJ: np.ndarray
  median_median: float
  fit: DataEfficiencyFit
  intervals: dict[str, np.ndarray] | None  # name -> (J, 2) bootstrap bands.
  budget: BudgetOptimum | None
  sigma_star: dict | None
  bootstrap: dict[str, np.ndarray] | None = None  # name -> (B, J) samples.


def result_to_json(result: ValueRLResult) -> dict:
  """fits.json entry: thresholds, alpha, beta, d_min (normalised), intervals."""
  out = {"envs": list(result.envs), "utds": result.utds.tolist(),
         "thresholds": result.fit.thresholds.tolist(),
         "alpha": result.fit.alpha.tolist(), "beta": result.fit.beta.tolist(),
         "d_min": result.fit.d_min.tolist(), "loss": result.fit.loss.tolist(),
         "median_median": result.median_median}
  if result.intervals is not None:
    out["intervals"] = {k: v.tolist() for k, v in result.intervals.items()}
  if result.budget is not None:
    out["sigma_star_per_threshold"] = result.budget.sigma_star.tolist()
    out["budget_star"] = result.budget.budget_star.tolist()
    out["sigma_star"] = result.sigma_star
  return out


def curves_to_times(runs: Mapping, thresholds_J, max_return: Mapping[str, float],
                    *, top: float = 1000.0):
  """{(env, utd, bs, lr): (T, 1+S) array} -> (envs, utds, times (E, U, J)).

  Column 0 of each array is the env step, the rest are per-seed raw returns,
  normalised with top / max_return[env]. One (bs, lr) per (env, utd) expected.
  """
  envs = tuple(sorted({k[0] for k in runs}))
  utds = np.array(sorted({k[1] for k in runs}))
  by_cell = {}
  for (env, utd, _, _), arr in runs.items():
    if (env, utd) in by_cell:
      raise ValueError(f"curves_to_times: several (bs, lr) for {(env, utd)}.")
    by_cell[(env, utd)] = arr
  times = np.full((len(envs), len(utds), len(thresholds_J)), np.nan)
  for i, env in enumerate(envs):
    if env not in max_return:
      raise ValueError(f"curves_to_times: no max_return for env {env!r}.")
    for j, utd in enumerate(utds):
      arr = by_cell.get((env, utd))
      if arr is not None:
        times[i, j] = crossing_times(arr[:, 0], arr[:, 1:], thresholds_J,
                                     top / max_return[env])
  return envs, utds, times


def run_pipeline(runs: Mapping, max_return: Mapping[str, float], *,
                 thresholds=None, hfit: HparamFit | None = None,
                 n_params: float = 1.5e5, delta: float = 4e9,
                 num_fit: int = 8, num_bootstrap: int = 0, seed: int = 0,
                 interval: float = 0.9) -> ValueRLResult:
  """Curves -> D_J(sigma) fits -> budget-optimal sigma*(F) (gym defaults).

  Args:
    runs: output of `data.load_qscaled_zip`.
    max_return: per-env return normaliser (returns scaled to 0-1000).
    thresholds: J values (default `default_thresholds()`).
    hfit: batch-size law for compute; None skips the budget analysis.
    n_params, delta: critic size N and env-step cost (budget F = C + delta D).
    num_fit: thresholds used for the sigma*(F) line (rest held out).
    num_bootstrap: seed resamples for intervals of alpha, beta, d_min.
    seed: bootstrap key.
    interval: central mass of the bootstrap bands.

  Returns:
    ValueRLResult.
  """
  thr = default_thresholds() if thresholds is None else np.asarray(thresholds)
  envs, utds, times = curves_to_times(runs, thr, max_return)
  norm_UxJ, _, mm = median_normalise(times)
  de = fit_data_efficiency(utds, norm_UxJ, thr)
  intervals = boot = None
  if num_bootstrap:
    boot = _bootstrap_fit(runs, envs, utds, thr, max_return, num_bootstrap, seed)
    q = 100 * (1 - interval) / 2
    intervals = {k: np.nanpercentile(v, [q, 100 - q], axis=0).T
                 for k, v in boot.items()}
  budget = star = None
  if hfit is not None:
    budget = budget_optimal_utd(de, mm, hfit, n_params=n_params, delta=delta)
    star = fit_sigma_star(budget.budget_star, budget.sigma_star, num_fit)
  return ValueRLResult(envs, utds, times, norm_UxJ, mm, de, intervals, budget,
                       star, boot)


def _bootstrap_fit(runs, envs, utds, thr, max_return, num, seed):
  """Seed bootstrap of crossing times -> refit; name -> (num, J) samples."""
  times_BxExUxJ = np.full((num, len(envs), len(utds), len(thr)), np.nan)
  for (env, utd, _, _), arr in runs.items():
    i, j = envs.index(env), int(np.searchsorted(utds, utd))
    times_BxExUxJ[:, i, j] = bootstrap_crossing_times(
        arr[:, 0], arr[:, 1:], thr, scale=1000.0 / max_return[env], num=num,
        seed=seed)
  norm_BxUxJ = np.stack([median_normalise(t)[0] for t in times_BxExUxJ])
  y_KxU = norm_BxUxJ.transpose(0, 2, 1).reshape(-1, len(utds))
  finite = np.isfinite(y_KxU)
  starts = fit_lib.grid_starts(laws.POWER_LAW, REFERENCE_GRID)
  p, _, _ = fit_lib.fit_many(laws.POWER_LAW, utds, np.where(finite, y_KxU, 0.0),
                             starts, weights_KxN=finite.astype(np.float64),
                             invalid_rows="nan")  # a resample may reach < 3 UTDs.
  return {name: p[key].reshape(num, len(thr))
          for name, key in (("alpha", "a"), ("beta", "b"), ("d_min", "c"))}
