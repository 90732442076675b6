"""Tests for jaxlm.scaling.emergence (Snell et al. 2024 emergence laws)."""

import functools
import json
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from absl.testing import absltest

from jaxlm.scaling import emergence

_TRUE = dict(A=0.6, k=0.02, alpha=1.5, E0=2.0, B=0.25)  # E(D0 = 10) = 2.0 nats.
_DATA = np.array([1e2, 1e3, 1e4, 1e5])


def _synthetic(losses, seed=0, noise=0.02):
  """Accuracy from the law on a (checkpoint x D) grid with Gaussian noise."""
  loss_N, d_N = (a.ravel() for a in np.meshgrid(losses, _DATA))
  e_N = emergence.emergence_point(_TRUE, d_N)
  perf_N = _TRUE["A"] * np.maximum(e_N - loss_N, 0) + _TRUE["B"]
  return loss_N, d_N, perf_N + noise * np.random.default_rng(seed).standard_normal(
      loss_N.size)


class EmergenceTest(absltest.TestCase):

  def test_law_matches_hand_formula(self):
    law = emergence.emergence_law("log_power", 10.0, None)
    loss = np.array([2.0, 2.5, 3.0])
    d = np.array([1e4, 1e4, 1e2])
    e = 2.0 + 0.02 * (np.log(d) ** 1.5 - np.log(10.0) ** 1.5)
    want = 0.6 * np.maximum(e - loss, 0) + 0.25
    np.testing.assert_allclose(law.fn(_TRUE, (loss, d)), want, rtol=1e-6)
    power = emergence.emergence_law("power", 10.0, 0.25)
    self.assertNotIn("B", power.param_names)
    np.testing.assert_allclose(
        emergence.emergence_point(_TRUE, 1e2, form="power"),
        2.0 + 0.02 * (1e2**1.5 - 10**1.5))
    with self.assertRaisesRegex(ValueError, "d0 must be > 1"):
      emergence.emergence_law("log_power", 1.0, None)
    with self.assertRaisesRegex(ValueError, "form must be one of"):
      emergence.emergence_law("exp", 10.0, None)

  def test_nuts_recovers_a_correlated_gaussian(self):
    # N(mu, Sigma) with correlation 0.9: the dense mass matrix must be adapted.
    mu = np.array([1.0, -2.0])
    cov = np.array([[4.0, 0.9 * 2.0 * 0.5], [0.9 * 2.0 * 0.5, 0.25]])
    prec = jnp.asarray(np.linalg.inv(cov))
    log_prob = lambda th: -0.5 * (th - mu) @ prec @ (th - mu)
    with jax.enable_x64(True):
      samples, acc, div = jax.device_get(jax.jit(functools.partial(
          emergence.nuts, log_prob, num_warmup=300, num_samples=300))(
              jnp.zeros((4, 2)), key=jax.random.PRNGKey(0)))
    self.assertEqual(samples.shape, (4, 300, 2))
    flat = samples.reshape(-1, 2)
    np.testing.assert_array_less(np.abs(flat.mean(0) - mu) / np.sqrt(np.diag(cov)), 0.2)
    np.testing.assert_allclose(flat.std(0), np.sqrt(np.diag(cov)), rtol=0.1)
    self.assertAlmostEqual(np.corrcoef(flat.T)[0, 1], 0.9, delta=0.03)
    self.assertBetween(float(np.mean(acc)), 0.6, 0.97)
    self.assertEqual(int(np.sum(div)), 0)
    for i in range(2):
      self.assertLess(emergence.rhat(samples[..., i]), 1.02)
      self.assertGreater(emergence.ess(samples[..., i]), 300)
    with self.assertRaisesRegex(ValueError, "num_warmup and num_samples must be > 0"):
      emergence.nuts(log_prob, jnp.zeros((4, 2)), 0, 10, jax.random.PRNGKey(0))

  def test_missing_blackjax_names_the_extra(self):
    with mock.patch.dict(sys.modules, {"blackjax": None}):
      with self.assertRaisesRegex(ImportError, r"jaxlm\[bayes\]"):
        emergence.rhat(np.zeros((2, 4)))

  def test_rhat_matches_hand_computed_fixture(self):
    # 2 chains x 4 draws -> 4 half-chains of 2: [1, 2], [3, 4], [5, 6], [7, 8]; pooled
    # ranks r = 1..8 map to z_r = Phi^-1((r - 3/8) / 8.25), and z is antisymmetric.
    a = scipy.stats.norm.ppf((np.arange(5, 9) - 0.375) / 8.25)  # z_5..z_8 = a_1..a_4
    means = np.array([-(a[3] + a[2]), -(a[1] + a[0]), a[0] + a[1], a[2] + a[3]]) / 2
    within = np.mean([(a[3] - a[2]) ** 2, (a[1] - a[0]) ** 2] * 2) / 2  # var ddof 1, n 2
    between = 2 * np.var(means, ddof=1)
    bulk = np.sqrt(((2 - 1) / 2 * within + between / 2) / within)
    # The folded draws |x - 4.5| = (3.5, 2.5, 1.5, .5, .5, 1.5, 2.5, 3.5) have tied
    # ranks (average 1.5, 3.5, 5.5, 7.5); their half-chains disagree less than the bulk.
    self.assertAlmostEqual(bulk, 2.9994, places=3)
    samples = np.arange(1.0, 9.0).reshape(2, 4)
    self.assertAlmostEqual(emergence.rhat(samples), bulk, places=5)
    # Invariant to monotone transforms (ranks only); ~1 for independent draws.
    self.assertAlmostEqual(emergence.rhat(np.exp(samples)), bulk, places=5)
    iid = np.random.default_rng(0).standard_normal((4, 1000))
    self.assertLess(abs(emergence.rhat(iid) - 1.0), 0.01)
    shifted = iid + np.array([[0.0], [0.0], [0.0], [1.0]])  # one chain elsewhere
    self.assertGreater(emergence.rhat(shifted), 1.1)

  def test_ess_of_iid_and_ar1_draws(self):
    # AR(1) with coefficient rho has integrated autocorrelation time (1 + rho) / (1 - rho).
    rng = np.random.default_rng(1)
    iid = rng.standard_normal((4, 2000))
    self.assertAlmostEqual(emergence.ess(iid) / iid.size, 1.0, delta=0.1)
    rho, x = 0.9, np.zeros((4, 2000))
    x[:, 0] = rng.standard_normal(4)
    for t in range(1, 2000):
      x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(4)
    want = x.size * (1 - rho) / (1 + rho)  # 421
    self.assertAlmostEqual(emergence.ess(x) / want, 1.0, delta=0.25)

  def test_recovers_emergence_point_and_flags_undetermined(self):
    # Every checkpoint is pre-emergence in the few-shot limit (L > E(D0) = 2)
    # but post-emergence with enough finetuning data.
    near = emergence.fit_emergence(*_synthetic(np.linspace(2.05, 3.2, 16)),
                                   num_bootstrap=50, num_chains=4, num_mcmc=600)
    self.assertLess(abs(near.e0_mle - _TRUE["E0"]), 0.1)
    lo, _, hi = near.e0_posterior
    self.assertBetween(_TRUE["E0"], lo, hi)
    lo, _, hi = near.e0_bootstrap
    self.assertBetween(_TRUE["E0"], lo, hi)
    self.assertTrue(near.determined)
    self.assertAlmostEqual(near.noise_sigma, 0.02, delta=0.006)
    self.assertEqual(set(near.rhat), {"A", "k", "alpha", "E0", "B", "sigma"})
    self.assertLess(max(near.rhat.values()), 1.1)
    self.assertGreater(min(near.ess.values()), 20)
    self.assertBetween(near.acceptance, 0.6, 0.97)
    self.assertEqual(near.posterior["E0"].shape, (4 * 300,))
    self.assertEqual(set(json.loads(json.dumps(near.to_json(), allow_nan=False))["ess"]),
                     set(near.ess))
    # Far from emergence: every point is at chance; the elbow is unidentified.
    far = emergence.fit_emergence(*_synthetic(np.linspace(2.8, 3.6, 16)),
                                  num_bootstrap=50, num_chains=4, num_mcmc=600)
    lo, _, hi = far.e0_posterior
    self.assertFalse(far.determined)
    self.assertGreater(max(far.rhat.values()), 1.01)  # the chains do not agree.
    self.assertGreater(hi - lo, 3 * (near.e0_posterior[2] - near.e0_posterior[0]))


if __name__ == "__main__":
  absltest.main()
