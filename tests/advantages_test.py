"""Tests for jaxlm.rl.advantages: GRPO / Dr. GRPO / RLOO vs hand-computed numbers, degenerate
groups (exact zeros, no NaN, zero gradient), DAPO dynamic sampling and the helpers."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from jaxlm.rl import advantages

# Four groups of G = 4: mixed, all-solved, constant 0.1 (its float32 mean is not exactly 0.1),
# and a ragged group whose last response is invalid (its reward 7 must be ignored).
REWARDS_PxG = np.array([[1.0, 0.0, 0.0, 1.0],
                        [1.0, 1.0, 1.0, 1.0],
                        [0.1, 0.1, 0.1, 0.1],
                        [2.0, 0.0, 1.0, 7.0]], np.float32)
MASK_PxG = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]], np.float32)

# By hand. Group 0: mean 0.5, centred +-0.5, sum of squares 1.
#   ddof=1: std = sqrt(1/3) = 0.5773503 -> +-0.5 / 0.5773503 = +-0.8660254 (sqrt(3)/2).
#   ddof=0: std = 0.5 -> +-1.
# Group 3 (valid [2, 0, 1]): mean 1, centred [1, -1, 0], sum of squares 2.
#   ddof=1: std = 1 -> [1, -1, 0];  ddof=0: std = sqrt(2/3) = 0.8164966 -> +-1.2247449.
# RLOO: group 0: 1 - 1/3 = 0.6666667, 0 - 2/3 = -0.6666667;
#   group 3: 2 - (0 + 1)/2 = 1.5, 0 - (2 + 1)/2 = -1.5, 1 - (2 + 0)/2 = 0.
GRPO_DDOF1 = [[0.8660254, -0.8660254, -0.8660254, 0.8660254], [0, 0, 0, 0], [0, 0, 0, 0],
              [1.0, -1.0, 0.0, 0.0]]
GRPO_DDOF0 = [[1.0, -1.0, -1.0, 1.0], [0, 0, 0, 0], [0, 0, 0, 0],
              [1.2247449, -1.2247449, 0.0, 0.0]]
DR_GRPO = [[0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0], [0, 0, 0, 0], [1.0, -1.0, 0.0, 0.0]]
RLOO = [[0.6666667, -0.6666667, -0.6666667, 0.6666667], [0, 0, 0, 0], [0, 0, 0, 0],
        [1.5, -1.5, 0.0, 0.0]]
DEGENERATE_P = [False, True, True, False]


# Jitted (one compile per shape rather than one per op in eager mode) to keep the tests fast.
_FNS = {
    "grpo_ddof1": jax.jit(lambda r, m=None: advantages.group_advantages(r, m, ddof=1)),
    "grpo_ddof0": jax.jit(lambda r, m=None: advantages.group_advantages(r, m, ddof=0)),
    "dr_grpo": jax.jit(lambda r, m=None: advantages.group_advantages(r, m, scale="none")),
    "rloo": jax.jit(advantages.rloo_advantages),
}


def _fn(name):
  return _FNS[name]


ALL_FNS = [("grpo_ddof1",), ("grpo_ddof0",), ("dr_grpo",), ("rloo",)]


class GroupAdvantagesTest(parameterized.TestCase):

  @parameterized.parameters(("grpo_ddof1", GRPO_DDOF1), ("grpo_ddof0", GRPO_DDOF0),
                            ("dr_grpo", DR_GRPO), ("rloo", RLOO))
  def test_hand_numbers(self, name, expected_PxG):
    adv_PxG = _fn(name)(REWARDS_PxG, MASK_PxG)
    self.assertEqual(adv_PxG.dtype, jnp.float32)
    # eps = 1e-6 in the std moves the GRPO numbers by ~1e-6 relative.
    np.testing.assert_allclose(adv_PxG, expected_PxG, atol=3e-6)

  def test_grpo_eps_is_added_to_std(self):
    adv_PxG = advantages.group_advantages(REWARDS_PxG[:1], scale="std", ddof=0, eps=0.5)
    np.testing.assert_allclose(adv_PxG, [[0.5, -0.5, -0.5, 0.5]], atol=1e-7)  # 0.5 / (0.5+0.5)

  def test_rloo_is_scaled_dr_grpo(self):
    # A_rloo = n / (n - 1) * A_dr_grpo, with n = 4 (group 0) and n = 3 (group 3).
    rloo_PxG = advantages.rloo_advantages(REWARDS_PxG, MASK_PxG)
    dr_PxG = advantages.group_advantages(REWARDS_PxG, MASK_PxG, scale="none")
    n_P = np.array([4.0, 4.0, 4.0, 3.0])
    np.testing.assert_allclose(rloo_PxG, (n_P / (n_P - 1))[:, None] * dr_PxG, atol=1e-6)

  @parameterized.parameters(*ALL_FNS)
  def test_degenerate_groups_exactly_zero(self, name):
    adv_PxG = np.asarray(_fn(name)(REWARDS_PxG, MASK_PxG))
    self.assertTrue(np.all(np.isfinite(adv_PxG)))
    np.testing.assert_array_equal(adv_PxG[[1, 2]], 0.0)  # exact, not approximately
    np.testing.assert_array_equal(adv_PxG[3, 3], 0.0)  # invalid response
    self.assertTrue(np.all(adv_PxG[0] != 0.0))  # the mixed group is not zeroed

  @parameterized.parameters(*ALL_FNS)
  def test_group_of_one_and_empty_group(self, name):
    # G = 1: one response per prompt carries no signal.
    single_Px1 = np.array([[3.0], [0.0], [-1.5]], np.float32)
    adv_Px1 = np.asarray(_fn(name)(single_Px1))
    np.testing.assert_array_equal(adv_Px1, 0.0)
    # One valid response, and no valid response, inside a G = 3 group.
    r_PxG = np.array([[1.0, 5.0, -2.0], [4.0, 3.0, 2.0]], np.float32)
    m_PxG = np.array([[0, 1, 0], [0, 0, 0]], np.float32)
    adv_PxG = np.asarray(_fn(name)(r_PxG, m_PxG))
    np.testing.assert_array_equal(adv_PxG, 0.0)

  def test_grpo_ddof1_needs_two_responses(self):
    # Two valid responses: ddof=1 uses n - 1 = 1: centred [0.5, -0.5], std = sqrt(0.5).
    r_PxG = np.array([[1.0, 0.0, 9.0]], np.float32)
    m_PxG = np.array([[1, 1, 0]], np.float32)
    adv = advantages.group_advantages(r_PxG, m_PxG, ddof=1, eps=0.0)
    np.testing.assert_allclose(adv, [[0.7071068, -0.7071068, 0.0]], atol=1e-6)

  @parameterized.parameters(*ALL_FNS)
  def test_reward_gradient_finite_and_zero_on_degenerate_groups(self, name):
    weights_PxG = np.arange(1.0, 17.0, dtype=np.float32).reshape(4, 4)
    fn = _fn(name)

    def objective(r_PxG):
      return jnp.sum(weights_PxG * fn(r_PxG, MASK_PxG))

    g_PxG = np.asarray(jax.grad(objective)(jnp.asarray(REWARDS_PxG)))
    self.assertTrue(np.all(np.isfinite(g_PxG)))
    np.testing.assert_array_equal(g_PxG[[1, 2]], 0.0)
    self.assertEqual(g_PxG[3, 3], 0.0)  # invalid response
    self.assertGreater(np.abs(g_PxG[0]).sum(), 0.0)
    self.assertGreater(np.abs(g_PxG[3, :3]).sum(), 0.0)
    # G = 1 as well.
    g_Px1 = jax.grad(lambda r: jnp.sum(fn(r)))(jnp.ones((3, 1), jnp.float32))
    np.testing.assert_array_equal(g_Px1, 0.0)

  @parameterized.parameters(*ALL_FNS)
  def test_invalid_reward_garbage_is_ignored(self, name):
    r_PxG = REWARDS_PxG.copy()
    r_PxG[3, 3] = np.nan
    adv_PxG = _fn(name)(r_PxG, MASK_PxG)
    np.testing.assert_array_equal(adv_PxG, _fn(name)(REWARDS_PxG, MASK_PxG))

  def test_bad_scale_raises(self):
    with self.assertRaisesRegex(ValueError, "scale"):
      advantages.group_advantages(REWARDS_PxG, scale="mad")


class DynamicSamplingTest(parameterized.TestCase):

  def test_zero_variance_groups(self):
    np.testing.assert_array_equal(advantages.zero_variance_groups(REWARDS_PxG, MASK_PxG),
                                  DEGENERATE_P)

  def test_keep_mask_and_dropped_share(self):
    keep_P, dropped = advantages.dynamic_sampling_mask(REWARDS_PxG, MASK_PxG)
    np.testing.assert_array_equal(keep_P, [1.0, 0.0, 0.0, 1.0])
    self.assertEqual(keep_P.dtype, jnp.float32)
    self.assertEqual(float(dropped), 0.5)

  def test_mask_changes_the_verdict(self):
    # [1, 0, 1]: mixed; masking out the 0 leaves an all-correct group, dropped.
    r_PxG = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    m_PxG = np.array([[1, 0, 1], [1, 1, 1], [1, 1, 1]], np.float32)
    keep_P, dropped = advantages.dynamic_sampling_mask(r_PxG, m_PxG)
    np.testing.assert_array_equal(keep_P, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(dropped, 2.0 / 3.0, rtol=1e-6)
    keep_P, dropped = advantages.dynamic_sampling_mask(r_PxG)
    np.testing.assert_array_equal(keep_P, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(dropped, 1.0 / 3.0, rtol=1e-6)

  def test_fill_groups_keeps_varying_groups_first_in_draw_order(self):
    r_KxG = np.array([[1, 1], [0, 1], [0, 0], [1, 0], [0.5, 0]], np.float32)
    np.testing.assert_array_equal(advantages.fill_groups(r_KxG, 2), [1, 3])
    np.testing.assert_array_equal(advantages.fill_groups(r_KxG, 3), [1, 3, 4])
    # Fewer varying groups than slots: the earliest zero-variance groups fill the rest.
    np.testing.assert_array_equal(advantages.fill_groups(r_KxG, 5), [1, 3, 4, 0, 2])
    with self.assertRaisesRegex(ValueError, "num=6 must be in"):
      advantages.fill_groups(r_KxG, 6)


class HelpersTest(parameterized.TestCase):

  @parameterized.parameters(
      ("full", [1.5, -0.5, 0.0, -2.0, 0.25]),
      ("positive_only", [1.5, 0.0, 0.0, 0.0, 0.25]),
      ("negative_only", [0.0, -0.5, 0.0, -2.0, 0.0]),
  )
  def test_advantage_mode(self, mode, expected):
    adv = jnp.array([1.5, -0.5, 0.0, -2.0, 0.25], jnp.float32)
    out = advantages.advantage_mode(adv, mode)
    self.assertEqual(out.dtype, adv.dtype)
    self.assertEqual(out.shape, adv.shape)
    np.testing.assert_array_equal(out, expected)

  def test_advantage_mode_keeps_shape(self):
    adv_PxG = advantages.group_advantages(REWARDS_PxG, MASK_PxG, scale="none")
    pos = advantages.advantage_mode(adv_PxG, "positive_only")
    neg = advantages.advantage_mode(adv_PxG, "negative_only")
    self.assertEqual(pos.shape, (4, 4))
    np.testing.assert_array_equal(pos + neg, adv_PxG)
    self.assertTrue(np.all(np.asarray(pos) >= 0) and np.all(np.asarray(neg) <= 0))

  def test_bad_mode_raises(self):
    with self.assertRaisesRegex(ValueError, "mode"):
      advantages.advantage_mode(jnp.zeros(3), "absolute")

  def test_token_advantages(self):
    adv_B = np.array([2.0, -1.0, 0.5], np.float32)
    mask_BxT = np.array([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], np.float32)
    out_BxT = advantages.token_advantages(adv_B, mask_BxT)
    self.assertEqual(out_BxT.dtype, jnp.float32)
    np.testing.assert_array_equal(out_BxT, [[0, 2, 2, 0, 2], [-1, -1, 0, 0, 0], [0, 0, 0, 0, 0]])

  def test_token_advantages_row_major_flattening(self):
    # Response g of prompt p is row p * G + g.
    adv_PxG = advantages.rloo_advantages(REWARDS_PxG, MASK_PxG)
    out_BxT = advantages.token_advantages(adv_PxG.reshape(-1), np.ones((16, 2), np.float32))
    np.testing.assert_allclose(out_BxT[1 * 4 + 0], [0.0, 0.0])
    np.testing.assert_allclose(out_BxT[3 * 4 + 0], [1.5, 1.5], atol=1e-6)
    np.testing.assert_allclose(out_BxT[0 * 4 + 1], [-0.6666667, -0.6666667], atol=1e-6)


if __name__ == "__main__":
  absltest.main()
