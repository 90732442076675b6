"""Batched local minimisers for small parameter vectors: the solvers of `jaxlm.scaling.fit`.

`LeastSquares` is a weighted objective of residuals that also gives its local quadratic model;
`lm_minimize` (damped Gauss-Newton / Newton, Levenberg-Marquardt) and `lbfgs_minimize` (optax
L-BFGS with a zoom line search) refine one start inside a `jax.lax.while_loop`; `multistart`
vmaps either over many starts and masks the non-finite ones, `screened_multistart` refines
only the best starts of a short screening run. Everything is jittable and vmappable (over
starts and over bootstrap weights). See the docstring of `jaxlm.scaling.fit` for why LM is
the default and what it costs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

Array = Any


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
           jnp.eye(p, dtype=dtype), jnp.zeros(p, dtype), jnp.asarray(lambda0, dtype),
           jnp.asarray(2.0, dtype), jnp.asarray(False))
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


def best(theta_SxP, loss_S):
  """(theta_P, loss) of the lowest-loss start."""
  i = jnp.argmin(loss_S)
  return theta_SxP[i], loss_S[i]


def best_or_nan(theta_SxP, loss_S):
  """The best start's parameters, NaN when no start is finite (e.g. a bootstrap resample)."""
  theta_P, loss = best(theta_SxP, loss_S)
  return jnp.where(jnp.isfinite(loss), theta_P, jnp.nan)


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
