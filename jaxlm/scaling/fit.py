"""Robust multi-start fitting of parametric scaling laws.

Every start of a grid (or random set) of initial points is refined by a local solver for at
most `num_steps` iterations inside one `jax.lax.while_loop`; starts are `vmap`ped and the whole
fit is `jit`ted. The best finite start wins. Bootstrap resamples are further `vmap`ped as
per-point weights, so one compiled program fits all resamples.

Solvers (`solver=` of `fit` / `fit_many`):
  "auto"   "lm" (every loss below is a weighted sum of a pointwise loss of residuals).
  "lm"     damped (Levenberg-Marquardt) Gauss-Newton / Newton, `solvers.lm_minimize`: each iteration
           solves the P x P system (B + lambda diag(d)) step = -gradient in closed form
           (unrolled Cholesky, P is small), accepts the step if the loss falls and adapts
           lambda per start from the gain ratio (Nielsen's rule; Madsen, Nielsen and Tingleff
           2004, "Methods for non-linear least squares problems", Alg. 3.16). The curvature B
           is the Gauss-Newton matrix J^T diag(w rho'') J / sum(w) (J = jacfwd of the residuals)
           for "mse" and "asymmetric" (rho'' > 0 everywhere), and the exact Hessian of the
           objective (jax.hessian, cheap at P <= ~10) for "huber", whose rho'' vanishes on
           the linear branch (Gauss-Newton there would ignore those points).
  "lbfgs"  `optax.lbfgs` with a zoom line search (`solvers.lbfgs_minimize`): the general path
           for any smooth scalar objective (also what `solvers.multistart` runs on a plain
           callable).
One LM iteration costs one residual Jacobian (or one Hessian) and a tiny solve, without a line
search, so batched over starts and resamples it is far cheaper than an L-BFGS iteration and
needs a few dozen of them (benchmarks/scaling_bench.py, 1000 resamples x 125 starts of the D_J
fit: LM 14.1 s, L-BFGS 260 s, scipy L-BFGS-B loop 1062 s, all at the same optimum, measured
on 2 shared cores at load 8-11).

float64: the computation runs inside `jax.enable_x64(True)` (a context manager
in jax 0.10), so the user's global `jax_enable_x64` flag is left unchanged; all
results are returned as numpy float64.

Positive parameters (named in `Law.positive`) are optimised as their logarithm;
a start with a non-positive value for one of them is non-finite and masked.
Starts whose loss or parameters end non-finite are masked, never propagated.

Inputs are checked before fitting, the same way by every entry point (`check_data`): x, y and
the weights must be finite, x inside the law's domain (`Law.inputs`), y > 0 with `log_target`,
and the design must be able to determine the parameters: at least as many distinct x values
among the points with positive weight as the law has parameters (a necessary condition: a law
seen at m distinct inputs has a Jacobian of rank <= m). A fit where no start ends finite raises
instead of returning a start. `FitResult.converged` (gradient norm below `gtol`) is reported,
not enforced.

Losses (residual r = (prediction - target) / y_scale, on y or on log y):
  "mse"        mean r^2.
  "huber"      mean Huber(r; delta), as in Hoffmann et al. (2022) approach 3.
  "asymmetric" mean w(r) r^2 with w = over_weight where r > 0 (over-estimates).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm.scaling import solvers

Array = Any
LOSSES = ("mse", "huber", "asymmetric")
SOLVERS = ("auto", "lm", "lbfgs")


@dataclasses.dataclass(frozen=True)
class Law:
  """A parametric law y = fn(params, x).

  Attributes:
    name: short name used in reports.
    fn: `fn(params: dict[str, Array], x) -> y_N`, params in natural units.
    param_names: order of the parameter vector.
    positive: names fitted as log(value) (must be > 0).
    inputs: (name, strict lower bound or None) of each leaf of x, in `jax.tree.leaves`
      order, for input checks and their messages; e.g. ("x", 0.0) when the law takes a
      power or log of x. Empty: leaves named x, x[1], ..., any finite value allowed.
  """

  name: str
  fn: Callable[[Mapping[str, Array], Any], Array]
  param_names: tuple[str, ...]
  positive: tuple[str, ...] = ()
  inputs: tuple[tuple[str, float | None], ...] = ()

  def __post_init__(self):
    unknown = set(self.positive) - set(self.param_names)
    if unknown:
      raise ValueError(f"Law {self.name}: positive names {sorted(unknown)} "
                       "are not in param_names.")

  def to_natural(self, theta_P):
    """Unconstrained vector -> dict of natural parameters."""
    return {n: jnp.exp(theta_P[i]) if n in self.positive else theta_P[i]
            for i, n in enumerate(self.param_names)}

  def to_theta(self, values_SxP: np.ndarray) -> np.ndarray:
    """Natural-unit starts -> unconstrained starts (log of positives)."""
    values_SxP = np.asarray(values_SxP, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
      return np.stack([np.log(values_SxP[:, i]) if n in self.positive
                       else values_SxP[:, i]
                       for i, n in enumerate(self.param_names)], axis=1)


@dataclasses.dataclass(frozen=True)
class FitResult:
  """Outcome of `fit`.

  Attributes:
    params: best parameters, natural units.
    loss: objective at `params` (on the full data, weights as given).
    converged: final gradient norm below `gtol` (in the unconstrained space).
    grad_norm: that gradient norm.
    n_finite_starts: starts that ended with a finite loss.
    start_losses: every start's final loss (inf where masked), if requested.
    bootstrap: name -> (n_boot,) array of per-resample best parameters.
    intervals: name -> (low, high) percentile interval from `bootstrap`.
  """

  params: dict[str, float]
  loss: float
  converged: bool
  grad_norm: float
  n_finite_starts: int
  start_losses: np.ndarray | None = None
  bootstrap: dict[str, np.ndarray] | None = None
  intervals: dict[str, tuple[float, float]] | None = None

  def to_json(self) -> dict[str, Any]:
    """Plain-python summary (no arrays) for fits.json."""
    out = {"params": dict(self.params), "loss": self.loss,
           "converged": self.converged, "n_finite_starts": self.n_finite_starts}
    if self.intervals is not None:
      out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
    return out


def grid_starts(law: Law, grid: Mapping[str, Sequence[float]]) -> np.ndarray:
  """Cartesian-product starts (S, P) in natural units, `law.param_names` order."""
  missing = set(law.param_names) - set(grid)
  if missing:
    raise ValueError(f"grid_starts: no grid values for {sorted(missing)}.")
  rows = itertools.product(*[np.asarray(grid[n], np.float64)
                             for n in law.param_names])
  return np.array(list(rows), np.float64)


def random_starts(law: Law, low: Mapping[str, float], high: Mapping[str, float],
                  num: int, seed: int = 0) -> np.ndarray:
  """Uniform random starts (S, P); positives are drawn log-uniformly."""
  rng = np.random.default_rng(seed)
  cols = []
  for n in law.param_names:
    lo, hi = float(low[n]), float(high[n])
    if n in law.positive:
      cols.append(np.exp(rng.uniform(np.log(lo), np.log(hi), num)))
    else:
      cols.append(rng.uniform(lo, hi, num))
  return np.stack(cols, axis=1)


def pointwise_loss(r_N, kind: str, delta: float = 1.0, over_weight: float = 1.0):
  """Per-point loss of residuals r = prediction - target (see module doc)."""
  if kind == "mse":
    return r_N**2
  if kind == "huber":
    return optax.losses.huber_loss(r_N, delta=delta)
  if kind == "asymmetric":
    return jnp.where(r_N > 0, over_weight, 1.0) * r_N**2
  raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}.")


def make_problem(law: Law, *, loss: str = "mse", delta: float = 1.0,
                 over_weight: float = 1.0, log_target: bool = False,
                 y_scale: float = 1.0) -> Callable:
  """Returns `problem(x, y_N, w_N) -> LeastSquares` for `law` and the loss settings.

  Huber gets the exact-Hessian ("newton") curvature, mse and asymmetric Gauss-Newton.
  """
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
  rho = functools.partial(pointwise_loss, kind=loss, delta=delta, over_weight=over_weight)
  curvature = "newton" if loss == "huber" else "gauss_newton"

  def problem(x, y_N, w_N):
    target_N = jnp.log(y_N) if log_target else y_N

    def residual(theta_P):
      pred_N = law.fn(law.to_natural(theta_P), x)
      return ((jnp.log(pred_N) if log_target else pred_N) - target_N) / y_scale

    return solvers.LeastSquares(residual, rho, w_N, curvature)

  return problem


def make_objective(law: Law, **loss_kwargs) -> Callable:
  """Returns `objective(theta_P, x, y_N, w_N) -> scalar`, weighted mean loss.

  `loss_kwargs` as in `make_problem` (loss, delta, over_weight, log_target, y_scale).
  """
  problem = make_problem(law, **loss_kwargs)
  return lambda theta_P, x, y_N, w_N: problem(x, y_N, w_N)(theta_P)


def bootstrap_weights(key, num: int, group_N, num_groups: int):
  """Resampling counts (num, N): groups drawn with replacement.

  Efron bootstrap as count weights. With one group per point this is the plain
  point bootstrap; with seeds as groups it resamples whole seeds.

  Args:
    key: PRNG key (fixed => reproducible).
    num: number of resamples.
    group_N: int group index per point in [0, num_groups).
    num_groups: number of groups.

  Returns:
    counts (num, N) float64, each point weighted by its group's count.
  """
  idx_BxG = jax.random.randint(key, (num, num_groups), 0, num_groups)
  counts_BxG = jax.vmap(lambda i: jnp.bincount(i, length=num_groups))(idx_BxG)
  return counts_BxG[:, group_N].astype(jnp.float64)


def check_values(where: str, name: str, a, *, above: float | None = None,
                 at_least: float | None = None, why: str = "") -> np.ndarray:
  """`a` as float64; raises unless every value is finite (and > above, >= at_least).

  The one element-wise input check of the scaling fits: the message names the caller, the
  argument, the offending indices and the first bad value.
  """
  a = np.asarray(a, np.float64)
  ok, bad_as = np.isfinite(a), "non-finite"
  if above is not None:
    ok, bad_as = ok & (a > above), f"non-finite or <= {above:g}"
  if at_least is not None:
    ok, bad_as = ok & (a >= at_least), f"non-finite or < {at_least:g}"
  if ok.all():
    return a
  if a.ndim == 0:
    raise ValueError(f"{where}: {name} = {a} is {bad_as}{why}.")
  bad = np.argwhere(~ok)
  idx = [tuple(int(j) for j in b) if a.ndim > 1 else int(b[0]) for b in bad[:5]]
  first = tuple(bad[0])
  raise ValueError(f"{where}: {name} has {bad_as} values at indices {idx}"
                   f"{' ...' if len(bad) > 5 else ''} ({name}[{', '.join(map(str, first))}] = "
                   f"{a[first]}){why}.")


def _input_specs(law: Law, leaves) -> list[tuple[str, float | None]]:
  if not law.inputs:
    return [("x" if len(leaves) == 1 else f"x[{i}]", None) for i in range(len(leaves))]
  if len(law.inputs) != len(leaves):
    raise ValueError(f"law {law.name} takes {len(law.inputs)} inputs "
                     f"{[n for n, _ in law.inputs]}, x has {len(leaves)} leaves.")
  return list(law.inputs)


def check_data(where: str, law: Law, x, y, weights=None, *, log_target: bool = False):
  """Validates a fit's data; returns (y_KxN, w_KxN, distinct_K).

  Args:
    where: the caller, first word of every message.
    law: its `inputs` name and bound the leaves of x.
    x: pytree of arrays with leading dim N.
    y: targets (N,), or (K, N) for K datasets sharing x.
    weights: like y, or None (all ones).
    log_target: y must then be > 0.

  Raises ValueError naming the argument and the offending index when x, y or the weights
  are not finite, x is outside the law's domain, y <= 0 with `log_target`, weights are
  negative or shapes disagree. distinct_K counts the distinct x values among each dataset's
  points with positive weight (see `require_determined`).
  """
  y = np.asarray(y, np.float64)
  if y.ndim not in (1, 2) or y.shape[-1] == 0:
    raise ValueError(f"{where}: y must be (N,) or (K, N) with N >= 1, got {y.shape}.")
  n = y.shape[-1]
  leaves = jax.tree.leaves(x)
  rows_N = []
  for leaf, (name, bound) in zip(leaves, _input_specs(law, leaves)):
    if np.shape(leaf)[:1] != (n,):
      raise ValueError(f"{where}: x leading dim {np.shape(leaf)} does not match y {y.shape}.")
    why = f" ({law.name} takes a power or log of {name})" if bound is not None else ""
    rows_N.append(check_values(where, name, leaf, above=bound, why=why).reshape(n, -1))
  check_values(where, "y", y, above=0.0 if log_target else None,
               why=" (log_target=True compares log y)" if log_target else "")
  w = np.ones_like(y) if weights is None else np.asarray(weights, np.float64)
  if w.shape != y.shape:
    raise ValueError(f"{where}: weights {w.shape} must have y's shape {y.shape}.")
  check_values(where, "weights", w, at_least=0.0)
  _, x_id_N = np.unique(np.concatenate(rows_N, axis=1), axis=0, return_inverse=True)
  w_KxN = w.reshape(-1, n)
  distinct_K = np.array([np.unique(x_id_N.ravel()[w_N > 0]).size for w_N in w_KxN])
  return y.reshape(-1, n), w_KxN, distinct_K


def require_determined(where: str, law: Law, distinct_K, w_KxN) -> None:
  """Raises unless every dataset has at least as many distinct x (with positive weight) as the
  law has parameters, saying which dataset (when several) and why."""
  under_K = np.asarray(distinct_K) < len(law.param_names)
  if not under_K.any():
    return
  k = int(np.argmax(under_K))
  row = f", row {k} of y" if len(under_K) > 1 else ""
  names = [n for n, _ in law.inputs]
  what = f"({', '.join(names)}) inputs" if len(names) > 1 else "x value(s)"
  n_points = int((w_KxN[k] > 0).sum())
  same = " (every point has the same x)" if distinct_K[k] == 1 and n_points > 1 else ""
  raise ValueError(
      f"{where}{row}: only {distinct_K[k]} distinct {what} among the {n_points} point(s) with "
      f"positive weight{same}, fewer than the {len(law.param_names)} parameters "
      f"{law.param_names} of {law.name}: the fit is under-determined (add points at new x or "
      "fix parameters).")


def _check_starts(law: Law, starts_SxP) -> np.ndarray:
  starts_SxP = np.asarray(starts_SxP, np.float64)
  if (starts_SxP.ndim != 2 or starts_SxP.shape[1] != len(law.param_names)
      or not starts_SxP.shape[0]):
    raise ValueError(f"starts must be (S >= 1, {len(law.param_names)}) for "
                     f"{law.param_names}, got {starts_SxP.shape}.")
  return law.to_theta(starts_SxP)


def no_finite_start_message(where: str, law: Law, theta0_SxP) -> str:
  """Why a fit has no result: every start ended with a non-finite loss."""
  unusable = int((~np.isfinite(theta0_SxP).all(axis=1)).sum())
  return (f"{where}: no start reached a finite loss for {law.name} ({theta0_SxP.shape[0]} "
          f"starts, {unusable} with NaN or a non-positive value for {law.positive}); the law "
          "overflows or leaves its domain on these data (check the starts and the scale of x "
          "and y).")


@functools.lru_cache(maxsize=64)
def _compiled_fit(law, loss_cfg, steps_cfg, num_bootstrap, num_groups,
                  bootstrap_starts, solver):
  """One jitted program: full-data multi-start fit + vmapped bootstrap."""
  problem = make_problem(law, **dict(loss_cfg))

  def run(theta0_SxP, x, y_N, w_N, group_N, key):
    fn = lambda w: problem(x, y_N, w)
    solve = lambda w, starts, steps: solvers.screened_multistart(fn(w), starts, *steps,
                                                                 solver=solver)
    boot_BxP = jnp.zeros((0, theta0_SxP.shape[1]))
    if num_bootstrap:
      wb_BxN = w_N * bootstrap_weights(key, num_bootstrap, group_N, num_groups)
    if num_bootstrap and not bootstrap_starts:
      # Full data and resamples share one vmapped solve (one compilation).
      w_all = jnp.concatenate([w_N[None], wb_BxN])
      th_all, l_all, ls_all = jax.vmap(
          lambda w: solve(w, theta0_SxP, steps_cfg))(w_all)
      theta_KxP, loss_K, loss_S = th_all[0], l_all[0], ls_all[0]
      boot_BxP = jax.vmap(solvers.best_or_nan)(th_all[1:], l_all[1:])
    else:
      theta_KxP, loss_K, loss_S = solve(w_N, theta0_SxP, steps_cfg)
    if num_bootstrap and bootstrap_starts:
      _, top = jax.lax.top_k(-loss_K, min(bootstrap_starts, loss_K.shape[0]))
      boot_BxP = jax.vmap(lambda w: solvers.best_or_nan(*solve(
          w, theta_KxP[top], (steps_cfg[0], 0, 0))[:2]))(wb_BxN)
    theta_P, best = solvers.best(theta_KxP, loss_K)
    gnorm = jnp.linalg.norm(jax.grad(fn(w_N))(theta_P))
    return theta_P, best, gnorm, loss_S, boot_BxP

  return jax.jit(run)


def fit(law: Law, x, y_N, starts_SxP, *, loss: str = "mse", delta: float = 1.0,
        over_weight: float = 1.0, log_target: bool = False,
        y_scale: float | None = 1.0, weights_N=None, num_steps: int = 100,
        screen_steps: int = 0, screen_keep: int = 0, gtol: float = 1e-6,
        num_bootstrap: int = 0, groups_N=None,
        bootstrap_starts: int = 0, seed: int = 0, interval: float = 0.9,
        return_start_losses: bool = False, solver: str = "auto") -> FitResult:
  """Fits `law` to (x, y) from many starts; the best finite start wins.

  Args:
    law: the parametric form.
    x: array (N, ...) or pytree of arrays with leading dim N, passed to law.fn.
    y_N: targets (N,).
    starts_SxP: initial points in natural units (see `grid_starts`).
    loss: "mse" | "huber" | "asymmetric".
    delta: Huber threshold (on the scaled residual).
    over_weight: asymmetric loss weight for over-estimates.
    log_target: compare log(prediction) with log(y).
    y_scale: residuals are divided by it; None uses the mean |target| (x is
      not rescaled: laws take log x or ratios x / b, see laws.py).
    weights_N: optional per-point weights.
    num_steps: solver iterations per start (LM: trial steps; L-BFGS: iterations).
    screen_steps: if > 0, all starts first run this many iterations and only
      the best `screen_keep` are refined (see `solvers.screened_multistart`).
    screen_keep: number of screened starts refined.
    gtol: gradient-norm threshold for `converged`.
    num_bootstrap: resamples (0 = none); each refits every start.
    groups_N: optional group id per point (e.g. seed): bootstrap resamples
      whole groups instead of points.
    bootstrap_starts: 0 refits every resample from all starts (the same
      grid); k > 0 starts each resample from the k best full-data optima.
    seed: bootstrap key seed (fixed => reproducible intervals).
    interval: central percentile mass of the bootstrap interval.
    return_start_losses: keep all starts' final losses.
    solver: "auto" | "lm" | "lbfgs" (see the module doc; "auto" = "lm").

  Returns:
    FitResult.
  """
  chex.assert_rank(np.asarray(y_N), 1)
  y_KxN, w_KxN, distinct_K = check_data("fit", law, x, y_N, weights_N, log_target=log_target)
  require_determined("fit", law, distinct_K, w_KxN)
  (y_N,), (w_N,) = y_KxN, w_KxN
  theta0_SxP = _check_starts(law, starts_SxP)
  if y_scale is None:
    y_scale = float(np.mean(np.abs(np.log(y_N) if log_target else y_N))) or 1.0
  if groups_N is None:
    group_N = np.arange(y_N.shape[0])
  else:
    if np.shape(groups_N) != y_N.shape:
      raise ValueError(f"fit: groups_N {np.shape(groups_N)} must have y's shape {y_N.shape}.")
    _, group_N = np.unique(np.asarray(groups_N), return_inverse=True)
  loss_cfg = _loss_cfg("fit", loss, delta, over_weight, log_target, y_scale)
  steps_cfg = (int(num_steps), int(screen_steps), int(screen_keep))
  run = _compiled_fit(law, loss_cfg, steps_cfg, int(num_bootstrap),
                      int(group_N.max()) + 1, int(bootstrap_starts), _solver("fit", solver))
  with jax.enable_x64(True):
    out = run(jnp.asarray(theta0_SxP), _as64(x), jnp.asarray(y_N),
              jnp.asarray(w_N), jnp.asarray(group_N), jax.random.PRNGKey(seed))
    theta_P, best_loss, gnorm, loss_S, boot_BxP = jax.tree.map(np.asarray, out)
  if not np.isfinite(best_loss):
    raise ValueError(no_finite_start_message("fit", law, theta0_SxP))
  params = {k: float(v) for k, v in _natural(law, theta_P).items()}
  boot = intervals = None
  if num_bootstrap:
    boot = _natural(law, boot_BxP.T)
    q = 100 * (1 - interval) / 2
    intervals = {k: (float(np.nanpercentile(v, q)),
                     float(np.nanpercentile(v, 100 - q))) for k, v in boot.items()}
  return FitResult(params=params, loss=float(best_loss),
                   converged=bool(np.isfinite(best_loss) and gnorm < gtol),
                   grad_norm=float(gnorm),
                   n_finite_starts=int(np.isfinite(loss_S).sum()),
                   start_losses=loss_S if return_start_losses else None,
                   bootstrap=boot, intervals=intervals)


def _loss_cfg(where, loss, delta, over_weight, log_target, y_scale) -> tuple:
  """Hashable objective settings (validated) for the compiled-fit caches."""
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
  check_values(where, "y_scale", y_scale, above=0.0)
  return (("loss", loss), ("delta", float(delta)), ("over_weight", float(over_weight)),
          ("log_target", bool(log_target)), ("y_scale", float(y_scale)))


def _solver(where: str, solver: str) -> str:
  """The multistart solver for `solver` (every loss in LOSSES is least squares: "auto" = "lm")."""
  if solver not in SOLVERS:
    raise ValueError(f"{where}: solver must be one of {SOLVERS}, got {solver!r}.")
  return "lm" if solver == "auto" else solver


def _as64(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _natural(law: Law, theta) -> dict[str, np.ndarray]:
  """Unconstrained (P, ...) numpy -> natural numpy arrays per name."""
  return {n: np.exp(theta[i]) if n in law.positive else np.asarray(theta[i])
          for i, n in enumerate(law.param_names)}


@functools.lru_cache(maxsize=64)
def _compiled_many(law, loss_cfg, num_steps, solver):
  problem = make_problem(law, **dict(loss_cfg))

  def one(theta0_SxP, x, y_N, w_N):
    theta_SxP, loss_S = solvers.multistart(problem(x, y_N, w_N), theta0_SxP, num_steps, solver)
    theta_P, best = solvers.best(theta_SxP, loss_S)
    return theta_P, best, jnp.sum(jnp.isfinite(loss_S))

  return jax.jit(jax.vmap(one, in_axes=(None, None, 0, 0)))


def fit_many(law: Law, x, y_KxN, starts_SxP, *, weights_KxN=None,
             num_steps: int = 100, loss: str = "mse", delta: float = 1.0,
             over_weight: float = 1.0, log_target: bool = False,
             y_scale: float = 1.0, invalid_rows: str = "raise", solver: str = "auto"):
  """Fits K datasets sharing x in one vmapped, jitted call (best start each).

  Used for per-threshold fits, bootstrap refits and benchmarks. Inputs are checked as in `fit`
  (`check_data`); loss keywords, `num_steps` and `solver` as in `fit`.

  Args:
    invalid_rows: what to do with a dataset that is under-determined (fewer distinct x with
      positive weight than parameters) or where no start ends finite: "raise" (naming the
      row), or "nan" to return NaN parameters and an inf loss for it (e.g. bootstrap resamples,
      summarised with nan-aware percentiles).

  Returns:
    (params: name -> (K,) array, loss_K, n_finite_K).
  """
  if invalid_rows not in ("raise", "nan"):
    raise ValueError(f"invalid_rows must be 'raise' or 'nan', got {invalid_rows!r}.")
  chex.assert_rank(np.asarray(y_KxN), 2)
  y_KxN, w_KxN, distinct_K = check_data("fit_many", law, x, y_KxN, weights_KxN,
                                        log_target=log_target)
  theta0_SxP = _check_starts(law, starts_SxP)
  if invalid_rows == "raise":
    require_determined("fit_many", law, distinct_K, w_KxN)
  run = _compiled_many(law, _loss_cfg("fit_many", loss, delta, over_weight, log_target, y_scale),
                       int(num_steps), _solver("fit_many", solver))
  with jax.enable_x64(True):
    out = run(jnp.asarray(theta0_SxP), _as64(x), jnp.asarray(y_KxN),
              jnp.asarray(w_KxN))
    theta_KxP, loss_K, nfin_K = jax.tree.map(np.asarray, out)
  failed_K = ~np.isfinite(loss_K)
  if invalid_rows == "raise" and failed_K.any():
    raise ValueError(no_finite_start_message(
        f"fit_many, rows {np.flatnonzero(failed_K)[:5].tolist()} of y", law, theta0_SxP))
  bad_K = (distinct_K < len(law.param_names)) | failed_K
  theta_KxP = np.where(bad_K[:, None], np.nan, theta_KxP)
  return _natural(law, theta_KxP.T), np.where(bad_K, np.inf, loss_K), nfin_K
