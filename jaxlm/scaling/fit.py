"""Robust multi-start fitting of parametric scaling laws.

Every start of a grid (or random set) of initial points is refined by a local solver for at
most `num_steps` iterations inside one `jax.lax.while_loop`; starts are `vmap`ped and the whole
fit is `jit`ted. The best finite start wins. Bootstrap resamples are further `vmap`ped as
per-point weights, so one compiled program fits all resamples.

Solvers (`solver=` of `fit` / `fit_many`):
  "auto"   "lm" (every loss below is a weighted sum of a pointwise loss of residuals).
  "lm"     damped (Levenberg-Marquardt) Gauss-Newton / Newton, `lm_minimize`: each iteration
           solves the P x P system (B + lambda diag(d)) step = -gradient in closed form
           (unrolled Cholesky, P is small), accepts the step if the loss falls and adapts
           lambda per start from the gain ratio (Nielsen's rule; Madsen, Nielsen and Tingleff
           2004, "Methods for non-linear least squares problems", Alg. 3.16). The curvature B
           is the Gauss-Newton matrix J^T diag(w rho'') J / sum(w) (J = jacfwd of the residuals)
           for "mse" and "asymmetric" (rho'' > 0 everywhere), and the exact Hessian of the
           objective (jax.hessian, cheap at P <= ~10) for "huber", whose rho'' vanishes on
           the linear branch (Gauss-Newton there would ignore those points).
  "lbfgs"  `optax.lbfgs` with a zoom line search (`lbfgs_minimize`): the general path for any
           smooth scalar objective (also what `multistart` runs on a plain callable).
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


@dataclasses.dataclass(frozen=True)
class LeastSquares:
  """Objective f(theta) = sum_n w_n rho(r_n(theta)) / sum_n w_n of residuals r(theta).

  Callable as a plain objective (L-BFGS), and exposes the local quadratic model the damped
  solver needs (`model`).

  Attributes:
    residual: `theta_P -> r_N`.
    rho: elementwise pointwise loss `r_N -> l_N` (see `pointwise_loss`).
    w_N: non-negative point weights (bootstrap counts times user weights).
    curvature: "gauss_newton" (J^T diag(w rho'') J / sum w; needs rho'' > 0) or "newton"
      (exact Hessian of f).
  """

  residual: Callable
  rho: Callable
  w_N: Array
  curvature: str = "gauss_newton"

  def __call__(self, theta_P):
    return jnp.sum(self.w_N * self.rho(self.residual(theta_P))) / jnp.sum(self.w_N)

  def model(self, theta_P):
    """(f, gradient_P, curvature_PxP) at theta_P."""
    if self.curvature == "newton":
      def grad_and_aux(t):
        f, g_P = jax.value_and_grad(self)(t)
        return g_P, (f, g_P)
      h_PxP, (f, g_P) = jax.jacfwd(grad_and_aux, has_aux=True)(theta_P)
      return f, g_P, 0.5 * (h_PxP + h_PxP.T)
    if self.curvature != "gauss_newton":
      raise ValueError(f"curvature must be 'gauss_newton' or 'newton', got {self.curvature!r}.")
    j_NxP, r_N = jax.jacfwd(lambda t: (self.residual(t),) * 2, has_aux=True)(theta_P)
    ones_N = jnp.ones_like(r_N)
    # rho is elementwise: jvp with a ones tangent gives rho' (and, nested, rho'') per point.
    rho_and_d1 = lambda r: jax.jvp(self.rho, (r,), (ones_N,))
    (l_N, d1_N), (_, d2_N) = jax.jvp(rho_and_d1, (r_N,), (ones_N,))
    w_N = self.w_N / jnp.sum(self.w_N)
    return (jnp.sum(w_N * l_N), j_NxP.T @ (w_N * d1_N),
            j_NxP.T @ ((w_N * d2_N)[:, None] * j_NxP))


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

    return LeastSquares(residual, rho, w_N, curvature)

  return problem


def make_objective(law: Law, **loss_kwargs) -> Callable:
  """Returns `objective(theta_P, x, y_N, w_N) -> scalar`, weighted mean loss.

  `loss_kwargs` as in `make_problem` (loss, delta, over_weight, log_target, y_scale).
  """
  problem = make_problem(law, **loss_kwargs)
  return lambda theta_P, x, y_N, w_N: problem(x, y_N, w_N)(theta_P)


def spd_solve(a_PxP, b_P):
  """Solves a x = b for a small symmetric positive-definite a (unrolled Cholesky).

  Written as P^3 / 6 scalar operations, so that under `vmap` over many starts it runs as
  plain elementwise array code (no per-matrix LAPACK call). Returns non-finite values when
  a is not positive definite (the caller rejects such steps).
  """
  p = b_P.shape[0]
  l = [[None] * p for _ in range(p)]
  for j in range(p):
    l[j][j] = jnp.sqrt(a_PxP[j, j] - sum(l[j][k] ** 2 for k in range(j)))
    for i in range(j + 1, p):
      l[i][j] = (a_PxP[i, j] - sum(l[i][k] * l[j][k] for k in range(j))) / l[j][j]
  z = []
  for i in range(p):
    z.append((b_P[i] - sum(l[i][k] * z[k] for k in range(i))) / l[i][i])
  x = [None] * p
  for i in reversed(range(p)):
    x[i] = (z[i] - sum(l[k][i] * x[k] for k in range(i + 1, p))) / l[i][i]
  return jnp.stack(x)


def lm_minimize(problem: LeastSquares, theta0_P, num_steps: int, ftol: float = 1e-10,
                lambda0: float = 1e-3, lambda_max: float = 1e16):
  """Damped Gauss-Newton / Newton (Levenberg-Marquardt), jittable and vmappable.

  Madsen, Nielsen and Tingleff (2004), Alg. 3.16, with Marquardt's scaling: at theta with
  loss f, gradient g and curvature B (`problem.model`), the step solves
      (B + lambda diag(d)) step = -g,    d = running max of |diag(B)| (floored),
  in closed form (`spd_solve`). The gain ratio rho = (f - f(theta + step)) / (predicted
  decrease 0.5 step.(lambda d step - g)) decides: rho > 0 accepts the step and sets
  lambda *= max(1/3, 1 - (2 rho - 1)^3), nu = 2; otherwise the step is rejected and
  lambda *= nu, nu *= 2. A step that leaves the curvature non-positive-definite or makes
  the loss, gradient or curvature non-finite is rejected.

  Stops after `num_steps` iterations (accepted or not), or earlier once an accepted step
  near the undamped one (lambda <= 1) lowers the loss by less than `ftol` relative, or
  lambda exceeds `lambda_max` (no representable step lowers the loss). Under vmap, finished
  lanes keep their iterate while the others continue.

  Args:
    problem: the least-squares objective.
    theta0_P: initial point.
    num_steps: maximum number of iterations.
    ftol: relative loss decrease below which the run stops (scipy's L-BFGS-B stops at
      2.2e-9 absolute; 1e-10 relative keeps the optimum to ~1e-8 while letting starts that
      crawl along a flat valley stop ~10 iterations earlier than 1e-12).
    lambda0: initial damping (relative to diag(B)).
    lambda_max: damping at which the run stops.

  Returns:
    (theta_P, value); value is inf if the start was never finite.
  """

  def evaluate(theta_P):
    f, g_P, b_PxP = problem.model(theta_P)
    ok = (jnp.isfinite(f) & jnp.all(jnp.isfinite(g_P)) & jnp.all(jnp.isfinite(b_PxP))
          & jnp.all(jnp.isfinite(theta_P)))
    return f, g_P, b_PxP, ok

  def scale(d_P, b_PxP):
    d_P = jnp.maximum(d_P, jnp.abs(jnp.diag(b_PxP)))
    return jnp.maximum(d_P, 1e-9 * jnp.max(d_P))

  def body(carry):
    it, theta, f, g, b, d, lam, nu, done = carry
    first = it == 0  # evaluates theta0 itself: step = 0 (b = I, g = 0), accepted if finite.
    step = spd_solve(b + jnp.diag(lam * d), -g)
    new_theta = theta + step
    new_f, new_g, new_b, ok = evaluate(new_theta)
    predicted = 0.5 * jnp.dot(step, lam * d * step - g)
    gain = (f - new_f) / predicted
    accept = ok & (first | ((predicted > 0) & (new_f < f))) & ~done
    new_lam = jnp.where(accept, lam * jnp.maximum(1 / 3, 1 - (2 * gain - 1) ** 3), lam * nu)
    new_lam = jnp.where(first, lam, new_lam)
    small = accept & ~first & (lam <= 1.0) & (f - new_f <= ftol * f)
    pick = lambda u, v: jnp.where(accept, u, v)
    return (it + 1, pick(new_theta, theta), pick(new_f, f), pick(new_g, g), pick(new_b, b),
            pick(scale(d, new_b), d), jnp.where(done, lam, new_lam),
            jnp.where(accept, 2.0, 2.0 * nu),
            done | small | (new_lam > lambda_max) | (first & ~accept))

  p = theta0_P.shape[0]
  dtype = jnp.result_type(theta0_P)
  carry = (0, theta0_P, jnp.asarray(jnp.inf, dtype), jnp.zeros(p, dtype),
           jnp.eye(p, dtype=dtype), jnp.zeros(p, dtype), jnp.asarray(lambda0, dtype), jnp.asarray(2.0, dtype),
           jnp.asarray(False))
  out = jax.lax.while_loop(lambda c: (c[0] <= num_steps) & ~c[-1], body, carry)
  return out[1], out[2]


def lbfgs_minimize(objective: Callable, theta0_P, num_steps: int,
                   memory_size: int = 10, ftol: float = 1e-12):
  """L-BFGS with zoom line search (optax), jittable and vmappable.

  Stops after `num_steps` iterations, or earlier once an iteration lowers the
  loss by less than `ftol` relative (the scipy L-BFGS-B criterion, tighter) or
  a step is rejected. A step that would make the parameters or the loss
  non-finite, or raise the loss, is rejected (the iterate is kept). Under vmap
  finished lanes get a zero gradient, so their line searches end at once while
  the other lanes continue.

  Args:
    objective: `theta_P -> scalar`.
    theta0_P: initial point.
    num_steps: maximum number of L-BFGS iterations.
    memory_size: L-BFGS history length.
    ftol: relative loss decrease below which the run stops.

  Returns:
    (theta_P, value); value is inf if the start was never finite.
  """
  solver = optax.lbfgs(memory_size=memory_size,
                       linesearch=optax.scale_by_zoom_linesearch(
                           max_linesearch_steps=25))
  value_and_grad = optax.value_and_grad_from_state(objective)

  def body(carry):
    it, theta, value, state, done = carry
    v, g = value_and_grad(theta, state=state)
    g = jnp.where(jnp.isfinite(g) & ~done, g, 0.0)
    updates, new_state = solver.update(g, state, theta, value=v, grad=g,
                                       value_fn=objective)
    new_theta = optax.apply_updates(theta, updates)
    # The line search stored the loss at new_theta in its state.
    new_value = optax.tree_utils.tree_get(new_state, "value")
    ok = (jnp.all(jnp.isfinite(new_theta)) & jnp.isfinite(new_value)
          & (new_value <= value) & ~done)
    small = value - new_value <= ftol * jnp.abs(value)
    pick = lambda a, b: jax.tree.map(lambda u, w: jnp.where(ok, u, w), a, b)
    return (it + 1, pick(new_theta, theta), jnp.where(ok, new_value, value),
            pick(new_state, state), done | ~ok | small)

  value0 = objective(theta0_P)
  finite0 = jnp.isfinite(value0) & jnp.all(jnp.isfinite(theta0_P))
  carry = (0, theta0_P, jnp.where(finite0, value0, jnp.inf),
           solver.init(theta0_P), ~finite0)
  _, theta, value, _, _ = jax.lax.while_loop(
      lambda c: (c[0] < num_steps) & ~c[4], body, carry)
  return theta, value


def multistart(objective: Callable, theta0_SxP, num_steps: int, solver: str = "lbfgs"):
  """Refines every start (vmapped); returns (theta_SxP, loss_S), inf = masked.

  Non-finite starts are swapped for the best finite start before optimising
  (so no lane runs on NaNs) and reported with loss inf.

  Args:
    objective: `theta_P -> scalar`; a `LeastSquares` for solver "lm".
    theta0_SxP: starts (unconstrained).
    num_steps: iteration cap per start.
    solver: "lbfgs" (`lbfgs_minimize`) or "lm" (`lm_minimize`).
  """
  if solver == "lm" and not isinstance(objective, LeastSquares):
    raise ValueError("multistart: solver='lm' needs a LeastSquares objective (residuals and "
                     f"pointwise loss), got {type(objective).__name__}; use solver='lbfgs'.")
  if solver not in ("lm", "lbfgs"):
    raise ValueError(f"multistart: solver must be 'lm' or 'lbfgs', got {solver!r}.")
  minimize = lm_minimize if solver == "lm" else lbfgs_minimize
  value0_S = jax.vmap(objective)(theta0_SxP)
  finite_S = jnp.isfinite(value0_S) & jnp.all(jnp.isfinite(theta0_SxP), axis=1)
  fallback_P = theta0_SxP[jnp.argmin(jnp.where(finite_S, value0_S, jnp.inf))]
  theta0_SxP = jnp.where(finite_S[:, None], theta0_SxP, fallback_P)
  theta_SxP, loss_S = jax.vmap(
      lambda t: minimize(objective, t, num_steps))(theta0_SxP)
  finite_S &= jnp.isfinite(loss_S) & jnp.all(jnp.isfinite(theta_SxP), axis=1)
  return theta_SxP, jnp.where(finite_S, loss_S, jnp.inf)


def _best(theta_SxP, loss_S):
  i = jnp.argmin(loss_S)
  return theta_SxP[i], loss_S[i]


def _best_or_nan(theta_SxP, loss_S):
  """The best start's parameters, NaN when no start is finite (e.g. a bootstrap resample)."""
  theta_P, best = _best(theta_SxP, loss_S)
  return jnp.where(jnp.isfinite(best), theta_P, jnp.nan)


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


def screened_multistart(objective: Callable, theta0_SxP, num_steps: int,
                        screen_steps: int = 0, screen_keep: int = 0, solver: str = "lbfgs"):
  """Optionally screens all starts with a short run, then refines the best.

  With `screen_steps > 0` and `screen_keep < S`, every start first runs
  `screen_steps` iterations; the `screen_keep` lowest-loss ones are refined for
  `num_steps` (restarting L-BFGS memory or LM damping). Large grids (e.g. the 5400-start
  Chinchilla grid) then cost little more than their best starts. `solver` as in `multistart`.

  Returns:
    (theta_KxP, loss_K) of refined starts, loss_S of all starts after screening
    (or after refinement when there is no screening).
  """
  s = theta0_SxP.shape[0]
  if screen_steps and 0 < screen_keep < s:
    theta_SxP, loss_S = multistart(objective, theta0_SxP, screen_steps, solver)
    _, keep_K = jax.lax.top_k(-loss_S, screen_keep)
    theta_KxP, loss_K = multistart(objective, theta_SxP[keep_K], num_steps, solver)
    return theta_KxP, loss_K, loss_S
  theta_SxP, loss_S = multistart(objective, theta0_SxP, num_steps, solver)
  return theta_SxP, loss_S, loss_S


@functools.lru_cache(maxsize=64)
def _compiled_fit(law, loss_cfg, steps_cfg, num_bootstrap, num_groups,
                  bootstrap_starts, solver):
  """One jitted program: full-data multi-start fit + vmapped bootstrap."""
  problem = make_problem(law, **dict(loss_cfg))

  def run(theta0_SxP, x, y_N, w_N, group_N, key):
    fn = lambda w: problem(x, y_N, w)
    solve = lambda w, starts, steps: screened_multistart(fn(w), starts, *steps, solver=solver)
    boot_BxP = jnp.zeros((0, theta0_SxP.shape[1]))
    if num_bootstrap:
      wb_BxN = w_N * bootstrap_weights(key, num_bootstrap, group_N, num_groups)
    if num_bootstrap and not bootstrap_starts:
      # Full data and resamples share one vmapped solve (one compilation).
      w_all = jnp.concatenate([w_N[None], wb_BxN])
      th_all, l_all, ls_all = jax.vmap(
          lambda w: solve(w, theta0_SxP, steps_cfg))(w_all)
      theta_KxP, loss_K, loss_S = th_all[0], l_all[0], ls_all[0]
      boot_BxP = jax.vmap(_best_or_nan)(th_all[1:], l_all[1:])
    else:
      theta_KxP, loss_K, loss_S = solve(w_N, theta0_SxP, steps_cfg)
    if num_bootstrap and bootstrap_starts:
      _, top = jax.lax.top_k(-loss_K, min(bootstrap_starts, loss_K.shape[0]))
      boot_BxP = jax.vmap(lambda w: _best_or_nan(*solve(
          w, theta_KxP[top], (steps_cfg[0], 0, 0))[:2]))(wb_BxN)
    theta_P, best = _best(theta_KxP, loss_K)
    gnorm = jnp.linalg.norm(jax.grad(fn(w_N))(theta_P))
    return theta_P, best, gnorm, loss_S, boot_BxP

  return jax.jit(run)


def fit(law: Law, x, y_N, starts_SxP, *, loss: str = "mse", delta: float = 1.0,
        over_weight: float = 1.0, log_target: bool = False,
        y_scale: float | None = 1.0, weights_N=None, num_steps: int = 100,
        screen_steps: int = 0, screen_keep: int = 0, gtol: float = 1e-6, num_bootstrap: int = 0, groups_N=None,
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
      the best `screen_keep` are refined (see `screened_multistart`).
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
    theta_SxP, loss_S = multistart(problem(x, y_N, w_N), theta0_SxP, num_steps, solver)
    theta_P, best = _best(theta_SxP, loss_S)
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
