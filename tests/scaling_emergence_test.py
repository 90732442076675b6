"""Tests for jaxlm.scaling.emergence (Snell et al. 2024 emergence laws)."""

import jax
import jax.numpy as jnp
import numpy as np
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

  def test_metropolis_samples_a_gaussian(self):
    log_prob = lambda th: -0.5 * jnp.sum(((th - 1.0) / 2.0) ** 2)
    with jax.enable_x64(True):
      samples, acc = emergence.random_walk_metropolis(
          log_prob, jnp.zeros((8, 1)), jnp.eye(1) * 4.0, 4000,
          jax.random.PRNGKey(0))
    flat = np.asarray(samples[:, 1000:]).ravel()
    self.assertAlmostEqual(flat.mean(), 1.0, delta=0.2)
    self.assertAlmostEqual(flat.std(), 2.0, delta=0.2)
    self.assertBetween(float(acc.mean()), 0.2, 0.6)

  def test_recovers_emergence_point_and_flags_undetermined(self):
    # Every checkpoint is pre-emergence in the few-shot limit (L > E(D0) = 2)
    # but post-emergence with enough finetuning data.
    near = emergence.fit_emergence(*_synthetic(np.linspace(2.05, 3.2, 16)),
                                   num_bootstrap=50, num_mcmc=2000)
    self.assertLess(abs(near.e0_mle - _TRUE["E0"]), 0.1)
    lo, _, hi = near.e0_posterior
    self.assertBetween(_TRUE["E0"], lo, hi)
    lo, _, hi = near.e0_bootstrap
    self.assertBetween(_TRUE["E0"], lo, hi)
    self.assertTrue(near.determined)
    self.assertAlmostEqual(near.noise_sigma, 0.02, delta=0.006)
    # Far from emergence: every point is at chance; the elbow is unidentified.
    far = emergence.fit_emergence(*_synthetic(np.linspace(2.8, 3.6, 16)),
                                  num_bootstrap=50, num_mcmc=2000)
    lo, _, hi = far.e0_posterior
    self.assertFalse(far.determined)
    self.assertGreater(hi - lo, 3 * (near.e0_posterior[2] - near.e0_posterior[0]))


if __name__ == "__main__":
  absltest.main()
