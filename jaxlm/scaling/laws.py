"""Ready-made scaling-law forms for `jaxlm.scaling.fit`.

* `POWER_LAW`:      y = c + (x / b)^(-a)        (additive offset; Rybkin et al.
                    2025 eq. for D_J(sigma) = D_min + (beta / sigma)^alpha with
                    a = alpha, b = beta, c = D_min).
* `POWER_LAW_MULT`: y = c * (1 + (x / b)^(-a))  (multiplicative offset, c > 0).
* `shared_slope_loglinear(G)`: log10 y = slope * log10 x + intercept_g, one
                    slope shared by G groups (Rybkin et al. 2025, batch size and
                    learning rate vs UTD).
* `CHINCHILLA`:     L(N, D) = E + A / N^alpha + B / D^beta, evaluated as
                    exp(logsumexp(log A - alpha log N, log B - beta log D, log E))
                    (Hoffmann et al. 2022, approach 3; Besiroglu et al. 2024).

In both power laws b (and c for the multiplicative one) are fitted in log space.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np

from jaxlm.scaling import fit as fit_lib

# Besiroglu et al. (2024) / Hoffmann et al. (2022) approach-3 start grid, in
# natural units (A = e^a, B = e^b, E = e^e).
CHINCHILLA_GRID = {
    "E": np.exp(np.arange(-1.0, 1.6, 0.5)),
    "A": np.exp(np.arange(0.0, 26.0, 5.0)),
    "B": np.exp(np.arange(0.0, 26.0, 5.0)),
    "alpha": np.arange(0.0, 2.1, 0.5),
    "beta": np.arange(0.0, 2.1, 0.5),
}
# 3^5 = 243 starts spanning the same ranges: seconds instead of minutes.
CHINCHILLA_COARSE_GRID = {
    "E": np.exp([-1.0, 0.0, 1.0]), "A": np.exp([0.0, 10.0, 20.0]),
    "B": np.exp([0.0, 10.0, 20.0]), "alpha": (0.0, 1.0, 2.0),
    "beta": (0.0, 1.0, 2.0)}


def _power_law(params, x_N):
  return params["c"] + (x_N / params["b"]) ** (-params["a"])


def _power_law_mult(params, x_N):
  return params["c"] * (1.0 + (x_N / params["b"]) ** (-params["a"]))


def _chinchilla(params, x):
  """x = (log N, log D), each (M,)."""
  log_n_M, log_d_M = x
  terms_3xM = jnp.stack([
      jnp.log(params["A"]) - params["alpha"] * log_n_M,
      jnp.log(params["B"]) - params["beta"] * log_d_M,
      jnp.broadcast_to(jnp.log(params["E"]), log_n_M.shape)])
  return jnp.exp(jsp.logsumexp(terms_3xM, axis=0))


POWER_LAW = fit_lib.Law("power_law", _power_law, ("a", "b", "c"), ("b",), (("x", 0.0),))
POWER_LAW_MULT = fit_lib.Law("power_law_mult", _power_law_mult,
                             ("a", "b", "c"), ("b", "c"), (("x", 0.0),))
CHINCHILLA = fit_lib.Law("chinchilla", _chinchilla,
                         ("E", "A", "B", "alpha", "beta"), ("E", "A", "B"),
                         (("log n_params", None), ("log n_tokens", None)))


@functools.lru_cache(maxsize=None)
def shared_slope_loglinear(num_groups: int) -> fit_lib.Law:
  """Law for log10 y = slope * log10 x + intercept[g]; x = (log10x_N, onehot_NxG)."""

  def fn(params, x):
    log_x_N, onehot_NxG = x
    icpt_G = jnp.stack([params[f"intercept{g}"] for g in range(num_groups)])
    return params["slope"] * log_x_N + onehot_NxG @ icpt_G

  names = ("slope",) + tuple(f"intercept{g}" for g in range(num_groups))
  return fit_lib.Law(f"shared_slope_{num_groups}", fn, names,
                     inputs=(("log10 x", None), ("group one-hot", None)))


def fit_shared_slope(x_N, y_N, group_N: Sequence, **fit_kwargs):
  """Fits log10 y = slope log10 x + intercept_g with one slope (least squares).

  Rybkin et al. (2025), Sec. 4 (hyperparameters vs UTD): power laws sharing the
  exponent across environments.

  Args:
    x_N: positive inputs (e.g. UTD sigma).
    y_N: positive targets (e.g. best batch size).
    group_N: group label per point (e.g. env name).
    **fit_kwargs: passed to `fit` (e.g. num_bootstrap, groups_N).

  Returns:
    (slope, {group: intercept}, FitResult) with log10 intercepts.
  """
  x_N, y_N = (fit_lib.check_values("fit_shared_slope", name, a, above=0.0,
                                   why=" (the law is linear in log10 x and log10 y)")
              for name, a in (("x", x_N), ("y", y_N)))
  if np.shape(group_N) != x_N.shape:
    raise ValueError(f"fit_shared_slope: group_N {np.shape(group_N)} must have x's shape "
                     f"{x_N.shape}.")
  labels, g_N = np.unique(np.asarray(group_N), return_inverse=True)
  law = shared_slope_loglinear(len(labels))
  start = np.concatenate([[0.0], np.full(len(labels), np.mean(np.log10(y_N)))])
  res = fit_lib.fit(law, (np.log10(x_N), np.eye(len(labels))[g_N]),
                    np.log10(y_N), start[None], **fit_kwargs)
  icpt = {str(lab): res.params[f"intercept{g}"] for g, lab in enumerate(labels)}
  return res.params["slope"], icpt, res


def fit_chinchilla(n_params, n_tokens, loss, *, delta: float = 1e-3,
                   drop_highest: int = 0, grid=None, num_steps: int = 200, screen_steps: int = 15,
                   screen_keep: int = 64, **fit_kwargs):
  """Chinchilla approach 3: L(N, D) = E + A / N^alpha + B / D^beta.

  Hoffmann et al. (2022) Sec. 3.3 / App. D.2, as re-fitted by Besiroglu et al.
  (2024): Huber loss (delta = 1e-3) between log L and the log-sum-exp
  prediction, L-BFGS from a grid of starts, best start wins.

  Args:
    n_params: model sizes N (M,).
    n_tokens: training tokens D (M,).
    loss: final losses L (M,).
    delta: Huber delta on the log-loss residual.
    drop_highest: drop the runs with the k highest losses first (Besiroglu
      et al. drop 5 of the 245 Chinchilla points).
    grid: optional start grid {name: values} (default CHINCHILLA_GRID, 5400).
    num_steps: solver iterations for the refined starts (`fit`, solver "auto": damped
      Newton with the exact Hessian of the Huber objective).
    screen_steps: iterations every start runs before screening.
    screen_keep: best screened starts refined with `num_steps`.
    **fit_kwargs: passed to `fit` (num_bootstrap, seed, interval, ...).

  Returns:
    FitResult with params E, A, B, alpha, beta.
  """
  arrays = [np.asarray(a, np.float64) for a in (n_params, n_tokens, loss)]
  for name, a in zip(("n_params", "n_tokens", "loss"), arrays):
    if a.ndim != 1 or a.shape != arrays[0].shape:
      raise ValueError(f"fit_chinchilla: {name} must be 1-D like n_params.")
    fit_lib.check_values("fit_chinchilla", name, a, above=0.0, why=" (fitted in log space)")
  n_M, d_M, l_M = arrays
  if drop_highest:
    keep = np.argsort(np.argsort(-l_M, kind="stable"), kind="stable") >= drop_highest
    n_M, d_M, l_M = n_M[keep], d_M[keep], l_M[keep]
  starts = fit_lib.grid_starts(CHINCHILLA, grid or CHINCHILLA_GRID)
  return fit_lib.fit(CHINCHILLA, (np.log(n_M), np.log(d_M)), l_M, starts,
                     loss="huber", delta=delta, log_target=True,
                     num_steps=num_steps, screen_steps=screen_steps,
                     screen_keep=screen_keep, **fit_kwargs)
