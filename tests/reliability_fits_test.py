"""Scaling fits refuse data they cannot fit (issue 16, class 1).

Every entry point (fit, fit_many, fit_emergence, fit_shared_slope, fit_chinchilla,
fit_data_efficiency) goes through `fit.check_data`; each case below returned numbers before.
"""

import json

import numpy as np
from absl.testing import absltest, parameterized

from jaxlm.scaling import emergence, fit, laws, value_rl

_X = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
_LAW = laws.POWER_LAW
_Y = np.asarray(_LAW.fn(dict(a=0.8, b=0.3, c=0.4), _X))
_STARTS = fit.grid_starts(_LAW, {"a": (0.2, 0.8, 1.5), "b": (0.1, 0.5, 2.0),
                                 "c": (-0.5, 0.2, 1.0)})
_UNDER = "under-determined"


class CheckDataTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("x_nan", dict(x=np.r_[_X[:2], np.nan, _X[3:]]), r"fit: x has non-finite or <= 0 values "
       r"at indices \[2\] \(x\[2\] = nan\) \(power_law takes a power or log of x\)"),
      ("x_inf", dict(x=np.r_[np.inf, _X[1:]]), r"x has .* at indices \[0\] \(x\[0\] = inf\)"),
      ("x_negative", dict(x=np.r_[_X[:6], -1.0]), r"x has .* at indices \[6\] \(x\[6\] = -1.0\)"),
      ("x_zero", dict(x=np.r_[0.0, _X[1:]]), r"x\[0\] = 0.0"),
      ("fewer_points_than_params", dict(x=_X[:2], y=_Y[:2]),
       r"only 2 distinct x value\(s\) among the 2 point\(s\) .* fewer than the 3 parameters"),
      ("identical_x", dict(x=np.full(7, 2.0)), r"only 1 distinct .*every point has the same x"),
      ("two_weighted_points", dict(weights_N=np.r_[1.0, 1.0, np.zeros(5)]), _UNDER),
      ("all_zero_weights", dict(weights_N=np.zeros(7)), "only 0 distinct"),
      ("weights_nan", dict(weights_N=np.r_[1.0, np.nan, np.ones(5)]),
       r"weights has non-finite or < 0 values at indices \[1\]"),
      ("weights_negative", dict(weights_N=np.r_[-1.0, np.ones(6)]), r"weights\[0\] = -1.0"),
      ("log_target_y_zero", dict(y=np.r_[_Y[:3], 0.0, _Y[4:]], log_target=True),
       r"y has non-finite or <= 0 values at indices \[3\] .*log_target=True"),
      ("log_target_y_negative_scale_none",
       dict(y=np.r_[-_Y[0], _Y[1:]], log_target=True, y_scale=None), r"y\[0\] = -"),
      ("y_scale_zero", dict(y_scale=0.0), "y_scale = 0.0 is non-finite or <= 0"),
      ("no_starts", dict(starts=_STARTS[:0]), r"starts must be \(S >= 1, 3\)"),
      ("groups_length", dict(groups_N=[0, 1], num_bootstrap=2), r"groups_N \(2,\) must have"),
      ("weights_shape", dict(weights_N=np.ones(3)), "weights .* must have y's shape"),
  )
  def test_fit_refuses(self, override, message):
    kw = dict(x=_X, y=_Y, starts=_STARTS) | override
    with self.assertRaisesRegex(ValueError, message):
      fit.fit(_LAW, kw.pop("x"), kw.pop("y"), kw.pop("starts"), **kw)

  def test_no_finite_start_raises_instead_of_returning_a_start(self):
    # Before: params of the first start (b = NaN), loss inf, converged False.
    with self.assertRaisesRegex(ValueError, r"no start reached a finite loss for power_law "
                                r"\(2 starts, 2 with NaN or a non-positive value for \('b',\)\)"):
      fit.fit(_LAW, _X, _Y, np.array([[0.5, -1.0, 0.0], [0.5, 0.0, 0.0]]))

  def test_fit_many_checks_like_fit(self):
    y_KxN = np.stack([_Y, 2 * _Y])
    with self.assertRaisesRegex(ValueError, r"fit_many: x has .* at indices \[0\]"):
      fit.fit_many(_LAW, np.r_[-1.0, _X[1:]], y_KxN, _STARTS)
    with self.assertRaisesRegex(ValueError, r"fit_many: y has non-finite values at indices "
                                r"\[\(1, 4\)\]"):
      fit.fit_many(_LAW, _X, np.stack([_Y, np.r_[_Y[:4], np.nan, _Y[5:]]]), _STARTS)
    w_KxN = np.stack([np.ones(7), np.r_[1.0, 1.0, np.zeros(5)]])
    with self.assertRaisesRegex(ValueError, f"fit_many, row 1 of y: only 2 distinct .*{_UNDER}"):
      fit.fit_many(_LAW, _X, y_KxN, _STARTS, weights_KxN=w_KxN)
    with self.assertRaisesRegex(ValueError, "invalid_rows"):
      fit.fit_many(_LAW, _X, y_KxN, _STARTS, invalid_rows="skip")

  def test_fit_many_nan_rows(self):
    # Row 1 is under-determined: NaN parameters, never a fit to two points; row 0 unaffected.
    w_KxN = np.stack([np.ones(7), np.r_[1.0, 1.0, np.zeros(5)]])
    p, loss_K, _ = fit.fit_many(_LAW, _X, np.stack([_Y, _Y]), _STARTS, weights_KxN=w_KxN,
                                invalid_rows="nan")
    self.assertAlmostEqual(p["a"][0], 0.8, places=5)
    self.assertTrue(np.isnan([p[k][1] for k in "abc"]).all())
    self.assertEqual(loss_K[1], np.inf)
    with self.assertRaisesRegex(ValueError, r"fit_many, rows \[0, 1\] of y: no start reached"):
      fit.fit_many(_LAW, _X, np.stack([_Y, _Y]), np.array([[0.5, -1.0, 0.0]]))

  def test_emergence_refuses(self):
    loss, d, perf = emergence.synthetic_points(
        dict(A=0.6, k=0.02, alpha=1.5, E0=2.0, B=0.25), np.linspace(2.05, 3.2, 4), [1e2, 1e3])
    kw = dict(num_bootstrap=0, num_mcmc=0)
    # Before: e0_mle = NaN and an all-NaN bootstrap band, no error.
    with self.assertRaisesRegex(ValueError, r"loss has non-finite values at indices \[0\]"):
      emergence.fit_emergence(np.r_[np.nan, loss[1:]], d, perf, **kw)
    with self.assertRaisesRegex(ValueError, r"data has non-finite or <= 1 values at indices \[2\]"
                                r".*emergence_log_power takes a power or log of data"):
      emergence.fit_emergence(loss, np.r_[d[:2], 1.0, d[3:]], perf, **kw)
    with self.assertRaisesRegex(ValueError, r"only 1 distinct \(loss, data\) inputs .*" + _UNDER):
      emergence.fit_emergence(np.full_like(loss, 2.5), np.full_like(d, 100.0), perf, **kw)
    with self.assertRaisesRegex(ValueError, "only 3 distinct .* fewer than the 5 parameters"):
      emergence.fit_emergence(loss[:3], d[:3], perf[:3], **kw)

  def test_emergence_without_mcmc_is_strict_json(self):
    # fits.json is strict JSON (files.write_json): no NaN acceptance rate when MCMC is off.
    pts = emergence.synthetic_points(dict(A=0.6, k=0.02, alpha=1.5, E0=2.0, B=0.25),
                                     np.linspace(2.05, 3.2, 8), [1e2, 1e3, 1e4])
    res = emergence.fit_emergence(*pts, num_bootstrap=0, num_mcmc=0)
    self.assertIsNone(json.loads(json.dumps(res.to_json(), allow_nan=False))["acceptance"])

  def test_shared_slope_refuses(self):
    # Identical x: the slope is confounded with the intercepts (before: slope 4e-17, converged).
    with self.assertRaisesRegex(ValueError, r"only 3 distinct \(log10 x, group one-hot\) inputs "
                                r"among the 6 point\(s\).*4 parameters"):
      laws.fit_shared_slope(np.full(6, 2.0), np.arange(1.0, 7.0), list("aabbcc"))
    with self.assertRaisesRegex(ValueError, _UNDER):  # One x per group: same confounding.
      laws.fit_shared_slope([1.0, 1.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0], list("aabb"))
    with self.assertRaisesRegex(ValueError, r"fit_shared_slope: y has non-finite or <= 0 values "
                                r"at indices \[1\]"):
      laws.fit_shared_slope([1.0, 2.0, 4.0], [1.0, 0.0, 3.0], list("aaa"))
    with self.assertRaisesRegex(ValueError, "group_N"):
      laws.fit_shared_slope([1.0, 2.0, 4.0], [1.0, 2.0, 3.0], list("aa"))

  def test_chinchilla_and_data_efficiency_refuse(self):
    with self.assertRaisesRegex(ValueError, "only 3 distinct .* 5 parameters .* chinchilla"):
      laws.fit_chinchilla([1e8, 1e9, 1e10], [1e9, 1e10, 1e11], [3.0, 2.5, 2.0])
    with self.assertRaisesRegex(ValueError, r"fit_chinchilla: n_tokens has non-finite or <= 0 "
                                r"values at indices \[1\]"):
      laws.fit_chinchilla([1e8, 1e9, 1e10], [1e9, -1.0, 1e11], [3.0, 2.5, 2.0])
    with self.assertRaisesRegex(ValueError, "every point has the same x"):
      value_rl.fit_data_efficiency(np.full(4, 2.0), np.arange(1.0, 9.0).reshape(4, 2), [1, 2])

  def test_check_values_messages(self):
    with self.assertRaisesRegex(ValueError, r"f: a has non-finite values at indices "
                                r"\[\(0, 1\), \(1, 0\)\] \(a\[0, 1\] = nan\)"):
      fit.check_values("f", "a", [[1.0, np.nan], [np.inf, 2.0]])
    np.testing.assert_array_equal(fit.check_values("f", "a", [1, 2], above=0.0), [1.0, 2.0])


if __name__ == "__main__":
  absltest.main()
