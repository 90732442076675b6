"""Issue 16, class 2: out-of-range inputs are errors naming the bound; a NaN loss stops a run."""

import os
import tempfile

from absl.testing import absltest, parameterized
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import checkpoint, testing, train
from jaxlm.algos import offline
from jaxlm.config import TrainConfig
from jaxlm.models import Transformer


class OutOfRangeTest(parameterized.TestCase):

  @parameterized.parameters((16, r"row 1 position 3: field 'tokens' is 16 >= vocab_size=16"),
                            (-2, r"row 1 position 3: field 'tokens' is negative \(-2\)"))
  def test_batch_token_ids_outside_vocab(self, bad_id, message):
    batch = testing.fake_rl_batch(vocab_size=16)
    batch.tokens[1, 3] = bad_id
    with self.assertRaisesRegex(ValueError, message):
      batch.validate(vocab_size=16)

  def test_offline_data_checks_ids_against_its_model(self):
    batch = testing.fake_rl_batch(vocab_size=16)
    offline.OfflineData(None, batch, testing.tiny_model(vocab_size=16))
    with self.assertRaisesRegex(ValueError, r"field 'tokens' is 1[0-5] >= vocab_size=10"):
      offline.OfflineData(None, batch, testing.tiny_model(vocab_size=10))

  def test_transformer_rejects_what_would_be_nan(self):
    model = Transformer(testing.tiny_model(vocab_size=16, max_len=8))
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32))
    too_long = "sequence length 9 exceeds the learned position table \\(max_len=8\\)"
    for apply in (model.apply, jax.jit(model.apply)):  # a static length: checked under jit too
      with self.assertRaisesRegex(ValueError, too_long):
        apply(params, jnp.zeros((2, 9), jnp.int32))
    tokens = np.zeros((2, 8), np.int32)
    tokens[1, 5] = 16
    with self.assertRaisesRegex(ValueError, r"tokens_BxT\[1, 5\] = 16 is outside \[0, 16\)"):
      model.apply(params, tokens)
    with self.assertRaisesRegex(ValueError, r"positions_BxT\[0, 7\] = 8 is outside \[0, 8\)"):
      model.apply(params, np.zeros((2, 8), np.int32),
                  positions_BxT=np.arange(1, 9)[None].repeat(2, 0))


class NonFiniteLossTest(parameterized.TestCase):

  def _fit(self, run_dir, nan_at, **overrides):
    return train.fit(run_dir, testing.tiny_train(**overrides), testing.linear_init,
                     testing.linear_loss, testing.LinearData(nan_at=nan_at))

  # tiny_train logs every 2 steps and checkpoints every 3 (and at the end, step 6).
  @parameterized.parameters((3, 4, [3]),  # NaN at step 4: found at the logged step 4
                            (2, 3, []),  # at step 3: found before its checkpoint is written
                            (4, 6, [3]))  # at step 5: found at step 6, before the final save
  def test_nan_loss_stops_naming_the_step(self, nan_at, found_at, kept_steps):
    with tempfile.TemporaryDirectory() as d:
      with self.assertRaisesRegex(FloatingPointError,
                                  rf"step {found_at}: non-finite loss=nan.*stopped"):
        self._fit(d, nan_at)
      ckpt = checkpoint.Checkpointer(os.path.join(d, "checkpoints"))
      self.assertEqual(ckpt.all_steps(), kept_steps)
      if kept_steps:  # the checkpoint before the bad step is intact and finite
        state, _, _ = ckpt.restore(testing.linear_state(testing.tiny_train()))
        for leaf in jax.tree.leaves(state.params):
          self.assertTrue(np.isfinite(np.asarray(leaf)).all())

  def test_continue_trains_on(self):
    with tempfile.TemporaryDirectory() as d:
      state, history = self._fit(d, 1, on_nonfinite="continue")
    self.assertEqual(int(state.step), 6)
    self.assertTrue(np.isnan(history[-1]["loss"]))
    with self.assertRaisesRegex(ValueError, "on_nonfinite='maybe'"):
      TrainConfig(on_nonfinite="maybe")


if __name__ == "__main__":
  absltest.main()
