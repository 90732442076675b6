"""Tests for jaxlm.scaling.fit and jaxlm.scaling.laws."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from absl.testing import absltest, parameterized

from jaxlm.scaling import data, fit, laws, solvers

_X = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
_PL_GRID = {"a": (0.2, 0.8, 1.5), "b": (0.1, 0.5, 2.0), "c": (-0.5, 0.2, 1.0)}


_CHIN_GRID = laws.CHINCHILLA_COARSE_GRID
_LINE = fit.Law("line", lambda p, x: p["c"] + p["s"] * x, ("c", "s"))


def _noisy_power_law(seed=0, rows=None):
  """28 noisy points of y = 0.4 + (x / 0.3)^-0.8 (or `rows` such datasets)."""
  rng = np.random.default_rng(seed)
  x = np.tile(_X, 4)
  y = np.asarray(laws.POWER_LAW.fn(dict(a=0.8, b=0.3, c=0.4), x))
  return x, y + 0.01 * rng.standard_normal((rows, 28) if rows else 28)


def _numpy_power_law_loss(theta, x, y, loss, delta=0.005, over_weight=3.0):
  """Reference objective in numpy: theta = (a, log b, c), mean pointwise loss."""
  a, log_b, c = theta
  r = c + np.exp(-a * (np.log(x) - log_b)) - y
  if loss == "mse":
    return np.mean(r**2)
  if loss == "huber":
    return np.mean(np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)))
  return np.mean(np.where(r > 0, over_weight, 1.0) * r**2)


def _chinchilla_data(rng, m=240):
  # m = 240 like the real data below, so both share one compilation.
  n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), m))
  d = np.exp(rng.uniform(np.log(1e9), np.log(1e12), m))
  true = dict(E=1.8, A=400.0, B=2000.0, alpha=0.34, beta=0.37)
  l = true["E"] + true["A"] / n**true["alpha"] + true["B"] / d**true["beta"]
  return n, d, l, true


class FitTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("additive", laws.POWER_LAW, dict(a=0.8, b=0.3, c=0.4)),
      ("multiplicative", laws.POWER_LAW_MULT, dict(a=0.6, b=0.7, c=0.5)))
  def test_power_law_recovers_noise_free(self, law, true):
    y = np.asarray(law.fn(true, _X))
    res = fit.fit(law, _X, y, fit.grid_starts(law, _PL_GRID))
    for k, v in true.items():
      self.assertAlmostEqual(res.params[k], v, places=6, msg=k)
    self.assertTrue(res.converged)
    self.assertFalse(jax.config.jax_enable_x64)  # global flag untouched.

  def test_noisy_power_law_and_bootstrap_interval(self):
    rng = np.random.default_rng(0)
    x = np.tile(_X, 4)
    true = dict(a=0.8, b=0.3, c=0.4)
    y = np.asarray(laws.POWER_LAW.fn(true, x)) + 0.01 * rng.standard_normal(28)
    res = fit.fit(laws.POWER_LAW, x, y, fit.grid_starts(laws.POWER_LAW, _PL_GRID),
                  num_bootstrap=50, seed=1)
    for k, v in true.items():
      self.assertAlmostEqual(res.params[k], v, delta=0.1, msg=k)
      lo, hi = res.intervals[k]
      self.assertLess(lo, res.params[k])
      self.assertGreater(hi, res.params[k])
    again = fit.fit(laws.POWER_LAW, x, y, fit.grid_starts(laws.POWER_LAW, _PL_GRID),
                    num_bootstrap=50, seed=1)
    np.testing.assert_array_equal(again.bootstrap["a"], res.bootstrap["a"])

  def test_bootstrap_coverage_near_nominal(self):
    # 40 synthetic lines y = c + s x + noise; 90% percentile intervals for the
    # slope should cover the truth roughly 90% of the time (Efron bootstrap).
    law = fit.Law("line", lambda p, x: p["c"] + p["s"] * x, ("c", "s"))
    rng = np.random.default_rng(3)
    x = np.linspace(0.0, 1.0, 30)
    covered = 0
    for _ in range(40):
      y = 1.0 + 2.0 * x + 0.3 * rng.standard_normal(30)
      res = fit.fit(law, x, y, np.array([[0.0, 0.0]]), num_steps=5,
                    num_bootstrap=100, seed=int(rng.integers(1 << 30)))
      lo, hi = res.intervals["s"]
      covered += lo <= 2.0 <= hi
    self.assertBetween(covered / 40, 0.75, 1.0)

  def test_nan_starts_are_masked(self):
    true = dict(a=0.8, b=0.3, c=0.4)
    y = np.asarray(laws.POWER_LAW.fn(true, _X))
    starts = fit.grid_starts(laws.POWER_LAW, {"a": (-2.0, 0.4, 1.2),
                                              "b": (0.0, -1.0, 0.4),
                                              "c": (np.nan, 0.4)})
    res = fit.fit(laws.POWER_LAW, _X, y, starts, return_start_losses=True)
    self.assertEqual(res.n_finite_starts, 3)  # b > 0 and c finite only.
    self.assertTrue(np.all(np.isinf(res.start_losses[~np.isfinite(
        res.start_losses) | (res.start_losses > 1e300)])))
    self.assertAlmostEqual(res.params["a"], 0.8, places=6)

  @parameterized.parameters("mse", "huber", "asymmetric")
  def test_losses_on_log_target_recover(self, loss):
    true = dict(a=0.5, b=2.0, c=1.0)
    y = np.asarray(laws.POWER_LAW_MULT.fn(true, _X))
    res = fit.fit(laws.POWER_LAW_MULT, _X, y,
                  fit.grid_starts(laws.POWER_LAW_MULT, _PL_GRID | {"c": (0.5, 2)}),
                  loss=loss, delta=0.01, over_weight=5.0, log_target=True,
                  y_scale=None)
    for k, v in true.items():
      self.assertAlmostEqual(res.params[k], v, places=4, msg=k)

  def test_pointwise_losses_match_numpy(self):
    r = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(fit.pointwise_loss(r, "mse"), r**2)
    huber = np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5)
    np.testing.assert_allclose(fit.pointwise_loss(r, "huber", delta=1.0), huber)
    np.testing.assert_allclose(
        fit.pointwise_loss(r, "asymmetric", over_weight=3.0),
        np.where(r > 0, 3.0, 1.0) * r**2)
    with self.assertRaisesRegex(ValueError, "loss must be one of"):
      fit.pointwise_loss(r, "l1")

  def test_bad_inputs_raise(self):
    starts = fit.grid_starts(laws.POWER_LAW, _PL_GRID)
    with self.assertRaisesRegex(ValueError, "non-finite values at indices"):
      fit.fit(laws.POWER_LAW, _X, np.r_[np.nan, np.ones(6)], starts)
    with self.assertRaisesRegex(ValueError, "does not match"):
      fit.fit(laws.POWER_LAW, _X[:3], np.ones(7), starts)
    with self.assertRaisesRegex(ValueError, "starts must be"):
      fit.fit(laws.POWER_LAW, _X, np.ones(7), starts[:, :2])
    with self.assertRaisesRegex(ValueError, "no grid values"):
      fit.grid_starts(laws.POWER_LAW, {"a": (1,)})

  def test_shared_slope_recovers_and_groups_bootstrap(self):
    rng = np.random.default_rng(0)
    sigma = np.tile([0.5, 1.0, 2.0, 4.0, 8.0], 3)
    env = np.repeat(["a", "b", "c"], 5)
    icpt = {"a": 2.5, "b": 2.0, "c": 3.0}
    y = 10 ** (np.array([icpt[e] for e in env]) - 0.3 * np.log10(sigma))
    boot = dict(num_bootstrap=30, groups_N=env)  # one compilation for both.
    slope, got, _ = laws.fit_shared_slope(sigma, y, env, **boot)
    self.assertAlmostEqual(slope, -0.3, places=6)
    for k in icpt:
      self.assertAlmostEqual(got[k], icpt[k], places=6)
    noisy = y * 10 ** (0.02 * rng.standard_normal(15))
    _, _, res = laws.fit_shared_slope(sigma, noisy, env, **boot)
    lo, hi = res.intervals["slope"]
    self.assertLess(lo, hi)

  def test_chinchilla_recovers_synthetic(self):
    n, d, l, true = _chinchilla_data(np.random.default_rng(0))
    res = laws.fit_chinchilla(n, d, l, grid=_CHIN_GRID)
    for k, v in true.items():
      self.assertAlmostEqual(res.params[k] / v, 1.0, delta=1e-3, msg=k)
    with self.assertRaisesRegex(ValueError, "n_tokens must be 1-D"):
      laws.fit_chinchilla(n, d[:3], l)

  def test_chinchilla_on_besiroglu_data(self):
    path = data.shared_data_dir() / "chinchilla_besiroglu2024" / \
        "svg_extracted_data.csv"
    if not path.exists():
      self.skipTest(f"shared data not found at {path}")
    cols = data.load_csv(path)
    # As Besiroglu et al. (2024): tokens = FLOP / 6N, the 5 highest-loss
    # points dropped (240 remain).
    n = cols["Model Size"]
    res = laws.fit_chinchilla(n, cols["Training FLOP"] / (6 * n), cols["loss"],
                              drop_highest=5, grid=_CHIN_GRID)
    # Published: E=1.82, A=482, B=2085, alpha=0.348, beta=0.366.
    self.assertAlmostEqual(res.params["E"], 1.82, delta=0.02)
    self.assertAlmostEqual(res.params["alpha"], 0.348, delta=0.01)
    self.assertAlmostEqual(res.params["beta"], 0.366, delta=0.01)
    self.assertAlmostEqual(np.log(res.params["A"]), np.log(482), delta=0.1)
    self.assertAlmostEqual(np.log(res.params["B"]), np.log(2085), delta=0.1)


class DampedSolverTest(parameterized.TestCase):
  """The Levenberg-Marquardt / damped-Newton solver (`solver="lm"`, the default)."""

  def test_spd_solve_matches_numpy_and_flags_indefinite(self):
    rng = np.random.default_rng(0)
    m = rng.standard_normal((5, 5))
    a, b = m @ m.T + 0.1 * np.eye(5), rng.standard_normal(5)
    with jax.enable_x64(True):
      got = np.asarray(jax.jit(solvers.spd_solve)(jnp.asarray(a), jnp.asarray(b)))
      bad = np.asarray(solvers.spd_solve(jnp.asarray(np.diag([1.0, -1.0])), jnp.ones(2)))
    np.testing.assert_allclose(got, np.linalg.solve(a, b), rtol=1e-10)
    self.assertFalse(np.all(np.isfinite(bad)))  # not positive definite: step rejected.

  def test_curvature_matches_hand_formulas(self):
    # Line c + s x: Gauss-Newton for mse is 2 X^T W X / sum(w); the exact Huber Hessian
    # keeps only the points on the quadratic branch (|r| <= delta), X^T W_in X / sum(w).
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.1, 1.5, 1.9, 3.6])
    w = np.array([1.0, 2.0, 1.0, 0.5])
    theta = np.array([0.0, 1.0])
    r = theta[0] + theta[1] * x - y  # (-0.1, -0.5, 0.1, -0.6)
    x_nx2 = np.stack([np.ones(4), x], 1)
    with jax.enable_x64(True):
      args = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(w))
      models = jax.jit(lambda t, *a: (fit.make_problem(_LINE)(*a).model(t), fit.make_problem(
          _LINE, loss="huber", delta=0.2)(*a).model(t)))
      (f, g, b), (fh, gh, h) = models(jnp.asarray(theta), *args)
    np.testing.assert_allclose(f, np.sum(w * r**2) / w.sum())
    np.testing.assert_allclose(g, 2 * x_nx2.T @ (w * r) / w.sum())
    np.testing.assert_allclose(b, 2 * x_nx2.T @ (w[:, None] * x_nx2) / w.sum())
    inside = np.abs(r) <= 0.2
    huber = np.where(inside, 0.5 * r**2, 0.2 * (np.abs(r) - 0.1))
    np.testing.assert_allclose(fh, np.sum(w * huber) / w.sum())
    np.testing.assert_allclose(gh, x_nx2.T @ (w * np.clip(r, -0.2, 0.2)) / w.sum())
    np.testing.assert_allclose(h, x_nx2.T @ ((w * inside)[:, None] * x_nx2) / w.sum(),
                               atol=1e-15)

  def test_linear_least_squares_exact(self):
    # A linear model: the optimum is the normal-equations solution.
    rng = np.random.default_rng(1)
    x = np.linspace(0.0, 1.0, 30)
    y = 1.0 + 2.0 * x + 0.3 * rng.standard_normal(30)
    res = fit.fit(_LINE, x, y, np.array([[0.0, 0.0], [50.0, -80.0]]), num_steps=5)
    want = np.linalg.lstsq(np.stack([np.ones(30), x], 1), y, rcond=None)[0]
    np.testing.assert_allclose([res.params["c"], res.params["s"]], want, rtol=1e-9)
    self.assertTrue(res.converged)

  @parameterized.parameters("mse", "huber", "asymmetric")
  def test_reaches_scipy_optimum(self, loss):
    # Reference: scipy BFGS on a numpy objective, polished from our optimum and from the
    # true parameters; ours must be no worse than 1e-6 relative (and stationary).
    x, y = _noisy_power_law()
    res = fit.fit(laws.POWER_LAW, x, y, fit.grid_starts(laws.POWER_LAW, _PL_GRID), loss=loss,
                  delta=0.005, over_weight=3.0)
    theta = np.array([res.params["a"], np.log(res.params["b"]), res.params["c"]])
    self.assertAlmostEqual(_numpy_power_law_loss(theta, x, y, loss) / res.loss, 1.0,
                           delta=1e-12)
    ref = min(scipy.optimize.minimize(_numpy_power_law_loss, t0, (x, y, loss), method="BFGS",
                                      options={"gtol": 1e-12}).fun
              for t0 in (theta, np.array([0.8, np.log(0.3), 0.4])))
    self.assertLessEqual((res.loss - ref) / ref, 1e-6)
    self.assertTrue(res.converged, msg=res.grad_norm)

  def test_batched_rows_match_lbfgs(self):
    # fit_many: 4 datasets x 27 starts in one vmapped call per solver; same optimum.
    x, y = _noisy_power_law(seed=2, rows=4)
    starts = fit.grid_starts(laws.POWER_LAW, _PL_GRID)
    p_lm, loss_lm, nfin = fit.fit_many(laws.POWER_LAW, x, y, starts)
    _, loss_lbfgs, _ = fit.fit_many(laws.POWER_LAW, x, y, starts, solver="lbfgs")
    np.testing.assert_allclose(loss_lm, loss_lbfgs, rtol=1e-6)
    np.testing.assert_array_equal(nfin, 27)
    for k, (lm_k, want) in enumerate(zip(loss_lm, y)):
      theta = np.array([p_lm["a"][k], np.log(p_lm["b"][k]), p_lm["c"][k]])
      self.assertAlmostEqual(_numpy_power_law_loss(theta, x, want, "mse") / lm_k, 1.0,
                             delta=1e-12)

  def test_vmapped_lane_equals_single_start_and_masks_nonfinite(self):
    x, y = _noisy_power_law()
    theta0_SxP = laws.POWER_LAW.to_theta(np.array(
        [[0.5, 1.0, 0.0], [1.2, 0.2, 1.0], [0.5, -1.0, 0.0], [np.nan, 1.0, 0.0],
         [-50.0, 1e-30, 0.0]]))  # b <= 0, NaN, and a start whose prediction overflows.
    with jax.enable_x64(True):
      problem = fit.make_problem(laws.POWER_LAW)(jnp.asarray(x), jnp.asarray(y),
                                                 jnp.ones(28))
      theta_SxP, loss_S = jax.jit(lambda t: solvers.multistart(problem, t, 50, "lm"))(
          jnp.asarray(theta0_SxP))
      single_P, single = jax.jit(lambda t: solvers.lm_minimize(problem, t, 50))(
          jnp.asarray(theta0_SxP[1]))
    loss_S = np.asarray(loss_S)
    self.assertTrue(np.all(np.isfinite(loss_S[:2])))
    self.assertTrue(np.all(np.isinf(loss_S[2:])))
    np.testing.assert_allclose(np.asarray(theta_SxP)[1], single_P, rtol=1e-12)
    self.assertEqual(float(single), loss_S[1])

  def test_solver_option_is_checked(self):
    x, y = _noisy_power_law()
    with self.assertRaisesRegex(ValueError, "solver must be one of"):
      fit.fit(laws.POWER_LAW, x, y, fit.grid_starts(laws.POWER_LAW, _PL_GRID), solver="bfgs")
    with self.assertRaisesRegex(ValueError, "needs a LeastSquares objective"):
      solvers.multistart(lambda t: jnp.sum(t**2), jnp.zeros((2, 3)), 5, "lm")


if __name__ == "__main__":
  absltest.main()
