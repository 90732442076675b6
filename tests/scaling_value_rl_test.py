"""Tests for jaxlm.scaling.value_rl (Rybkin et al. 2025 pipeline)."""

import chex
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from absl.testing import absltest, parameterized

from jaxlm import files
from jaxlm.scaling import data, value_rl

_QSCALED = data.shared_data_dir() / "qscaled_rybkin2025"


def _pav_reference(y):
  """Plain-python pool adjacent violators (fixture)."""
  vals, wts = [], []
  for v in y:
    vals.append(float(v))
    wts.append(1)
    while len(vals) > 1 and vals[-2] > vals[-1]:
      w = wts[-2] + wts[-1]
      vals[-2] = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
      wts[-2] = w
      vals.pop()
      wts.pop()
  return np.repeat(vals, wts)


class IsotonicTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_example(self):
    iso = self.variant(value_rl.isotonic_increasing)(
        jnp.array([1.0, 3.0, 2.0, 4.0, 0.0, 6.0]))
    # (3, 2) -> 2.5; (4, 0) -> 2; then (2.5 x2, 2 x2) -> 2.25.
    np.testing.assert_allclose(iso, [1.0, 2.25, 2.25, 2.25, 2.25, 6.0])

  def test_matches_reference_on_random_walks(self):
    rng = np.random.default_rng(0)
    for _ in range(5):
      y = np.cumsum(rng.standard_normal(200))
      np.testing.assert_allclose(value_rl.isotonic_increasing(jnp.asarray(y)),
                                 _pav_reference(y), rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(scipy.optimize.isotonic_regression(y).x,
                                 _pav_reference(y), rtol=1e-12, atol=1e-12)

  @chex.variants(with_jit=True, without_jit=True)
  def test_first_crossing_jax(self):
    got = self.variant(value_rl.first_crossing)(
        jnp.array([10.0, 20.0, 30.0]), jnp.array([0.0, 1.0, 1.0]),
        jnp.array([0.5, 1.0, 2.0]))
    np.testing.assert_array_equal(got, [20.0, 20.0, np.nan])

  def test_crossing_times(self):
    steps = np.arange(1, 8) * 100.0
    rets = np.array([[0, 0], [1, 3], [4, 0], [3, 3], [5, 5], [9, 7], [8, 8.0]])
    # seed mean: 0 2 2 3 5 8 8 -> already monotone.
    got = value_rl.crossing_times(steps, rets, np.array([2.0, 4.9, 8.0, 9.0]))
    np.testing.assert_array_equal(got, [200.0, 500.0, 600.0, np.nan])
    got = value_rl.crossing_times(steps, rets, np.array([2.5]), scale=0.5)
    np.testing.assert_array_equal(got, [500.0])  # mean 0 1 1 1.5 2.5 4 4.
    with self.assertRaisesRegex(ValueError, "strictly increasing"):
      value_rl.crossing_times(steps[::-1], rets, np.array([1.0]))

  def test_bootstrap_crossings_spread(self):
    steps = np.arange(1, 101) * 10.0
    rng = np.random.default_rng(0)
    speed = rng.uniform(0.5, 2.0, 8)
    rets = np.minimum(1000, np.outer(steps, speed))
    b = value_rl.bootstrap_crossing_times(steps, rets, np.array([500.0]),
                                          num=64, seed=0)
    self.assertEqual(b.shape, (64, 1))
    self.assertGreater(np.std(b), 0.0)
    full = value_rl.crossing_times(steps, rets, np.array([500.0]))
    self.assertBetween(full[0], b.min(), b.max())

  def test_median_normalise(self):
    t = np.array([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])
    norm, med, mm = value_rl.median_normalise(t)
    np.testing.assert_allclose(med, [2.5, 25.0])
    np.testing.assert_allclose(norm, t[0] / 2.5)
    self.assertAlmostEqual(mm, 13.75)

  def test_data_efficiency_recovers_synthetic(self):
    utd = np.array([0.25, 0.5, 1, 2, 4, 8, 16.0])
    a, b, c = np.array([0.7, 1.2]), np.array([0.3, 0.6]), np.array([0.4, 0.8])
    t = (c[:, None] + (b[:, None] / utd) ** a[:, None]).T
    res = value_rl.fit_data_efficiency(utd, t, [1.0, 2.0])
    np.testing.assert_allclose(res.alpha, a, atol=1e-6)
    np.testing.assert_allclose(res.beta, b, atol=1e-6)
    np.testing.assert_allclose(res.d_min, c, atol=1e-6)
    np.testing.assert_array_equal(res.n_finite_starts, [100, 100])

  def test_budget_pareto_and_sigma_star(self):
    self.assertTrue(np.all(value_rl.pareto_mask([1, 2, 3, 2.5], [3, 2, 1, 2.5])
                           == [True, True, True, False]))
    f = np.logspace(15, 18, 10)
    s = 3e-9 * f**0.6
    fit = value_rl.fit_sigma_star(f, s, num_fit=8)
    self.assertAlmostEqual(fit["coef"] / 3e-9, 1.0, places=6)
    self.assertAlmostEqual(fit["exponent"], 0.6, places=8)
    np.testing.assert_allclose(fit["heldout_rel_error"], 0.0, atol=1e-8)
    self.assertEqual(value_rl.compute_cost(2, 3, 4, 5, k=10), 1200)

  def test_bootstrap_grid_argmin(self):
    times = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [np.nan, 1.0, 4.0]])
    values = np.array([[64.0, 1e-3], [256.0, 4e-3], [1024.0, 1e-2]])
    got = value_rl.bootstrap_grid_argmin(times, values)
    np.testing.assert_allclose(got, [(256 * 64 * 256) ** (1 / 3),
                                     (4e-3 * 1e-3 * 4e-3) ** (1 / 3)])


class GymReproductionTest(absltest.TestCase):
  """ACCEPTANCE: every reference (alpha, beta, D_min) within 1e-3, sigma*."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not _QSCALED.exists():
      raise absltest.SkipTest(f"shared data not found at {_QSCALED}")
    cls.ref = files.read_json(_QSCALED / "reference_outputs" / "fits_from_npy.json")
    cls.hfit = value_rl.hparam_fit_from_reference(
        cls.ref["grid_proposed_fits/gym_sweep/shared_bs_fit.npy"],
        cls.ref["grid_proposed_fits/gym_sweep/shared_lr_fit.npy"])
    cls.results = {
        name: value_rl.run_pipeline(
            data.load_qscaled_zip(_QSCALED / "raw_zips" / f"{name}.zip"),
            data.GYM_MAX_RETURN, hfit=cls.hfit, n_params=1.5e5, delta=4e9)
        for name in ("gym_ours", "gym_baseline_utd2")}

  def test_reference_fits_within_1e3(self):
    for name, mm in (("gym_ours", 210501.0), ("gym_baseline_utd2", 240251.0)):
      res = self.results[name]
      want = np.array(self.ref[f"data_pareto_fit/{name}.npy"]["rows"])
      got = np.stack([res.fit.alpha, res.fit.beta, res.fit.d_min], axis=1)
      np.testing.assert_allclose(got, want, atol=1e-3, rtol=0, err_msg=name)
      self.assertEqual(res.median_median, mm)

  def test_sigma_star_gym(self):
    star = self.results["gym_ours"].sigma_star
    self.assertAlmostEqual(star["coef"] / 2.62e-9, 1.0, delta=0.005)
    self.assertAlmostEqual(star["exponent"], 0.62, delta=0.005)
    self.assertLen(star["heldout_rel_error"], 2)

  def test_proposed_hparams_match_reference_csv(self):
    cols = data.load_csv(_QSCALED / "reference_outputs" /
                         "grid_proposed_hparams/gym_sweep/shared_fitted.csv")
    for env, utd, bs, lr in zip(cols["Environment"], cols["UTD"],
                                cols["Batch Size"], cols["Learning Rate"]):
      got_bs, got_lr = value_rl.propose_hparams(self.hfit, utd, env)
      self.assertBetween(got_bs - bs, 0.0, 1.0)  # the CSV truncates.
      self.assertAlmostEqual(got_lr / lr, 1.0, delta=5e-3, msg=(env, utd))  # 3 s.f.
    # The shared-slope fitter recovers the law from its own proposals.
    hf = value_rl.fit_hparam_laws(cols["UTD"], cols["Batch Size"],
                                  cols["Learning Rate"], cols["Environment"])
    self.assertAlmostEqual(hf.bs_slope, self.hfit.bs_slope, delta=2e-3)
    self.assertAlmostEqual(hf.lr_slope, self.hfit.lr_slope, delta=2e-3)


if __name__ == "__main__":
  absltest.main()
