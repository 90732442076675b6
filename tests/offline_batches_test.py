"""Minibatches of offline windows: determinism, successors, trimmed successors."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import testing
from jaxlm.algos import ilql
from jaxlm.algos import offline
from jaxlm.data import next_window_rows
from jaxlm.data.batch import RLBatch
from jaxlm.data.iterators import RandomBatches
from jaxlm.rl.returns import action_return_stats

TINY = testing.tiny_model()


class RandomBatchesTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.config = ilql.Config(num_trajectories=12, max_len=96, model=TINY)
    self.data = offline.prepare(self.config, None)
    self.batch = self.data.batch

  def test_batch_i_depends_only_on_seed_and_index(self):
    a = RandomBatches(self.batch, 16, seed=3)
    b = RandomBatches(self.batch, 16, seed=3)
    first = [next(a) for _ in range(3)]
    b.set_state({"index": 2})
    np.testing.assert_array_equal(next(b).tokens, first[2].tokens)

  def test_length_buckets_draw_rows_uniformly_and_cut_to_the_bucket(self):
    # Rows of lengths 1..10 in a [10, 12] batch; buckets <= 4, <= 8, the rest (<= 12).
    lengths = np.arange(1, 11)
    attn = (np.arange(12)[None] < lengths[:, None]).astype(np.float32)
    tokens = np.where(attn > 0, lengths[:, None], 0).astype(np.int32)
    zeros = np.zeros_like(attn)
    batch = RLBatch(tokens, attn, attn, zeros, zeros)
    data = RandomBatches(batch, 5, seed=0, length_buckets=(4, 8))
    counts, shapes = np.zeros(11), set()
    for _ in range(4000):
      b = next(data)
      shapes.add(b.tokens.shape[1])
      rows = b.tokens[:, 0]
      np.add.at(counts, rows, 1)
      # One bucket per batch; every row fits its cut, nothing of it is lost.
      self.assertLen({(r > 4) + (r > 8) for r in rows}, 1)
      np.testing.assert_array_equal(b.attention_mask.sum(1), rows)
    self.assertEqual(shapes, {4, 8, 12})
    # Each row drawn with probability 1/10 per slot: 2000 draws each, binomial sd ~42.
    np.testing.assert_allclose(counts[1:], 2000, atol=200)
    with self.assertRaisesRegex(ValueError, "increasing"):
      RandomBatches(batch, 5, seed=0, length_buckets=(8, 4))

  def test_successors_are_next_windows_cut_after_first_trained_action(self):
    data = RandomBatches(self.batch, 64, seed=0, with_next=True)
    _, length = self.batch.tokens.shape
    first = np.argmax(np.asarray(self.batch.loss_mask) > 0, axis=1)
    self.assertEqual(data.next_len % 8, 0)
    self.assertLess(data.next_len, length)  # Maze windows: one observation before the action
    self.assertGreater(data.next_len, first.max())
    windows, successors = next(data)
    self.assertEqual(successors.tokens.shape, (64, data.next_len))
    self.assertEqual(successors.bootstrap_returns.shape, (64,))
    # Each successor is the sampled row's next window (itself at the episode's end), cut.
    nxt = next_window_rows(self.batch)
    rows = [int(np.flatnonzero((np.asarray(self.batch.tokens) == w).all(1))[0])
            for w in windows.tokens[:8]]
    for w, r in zip(successors.tokens[:8], rows):
      want = nxt[r] if nxt[r] >= 0 else r
      np.testing.assert_array_equal(w, np.asarray(self.batch.tokens)[want, :data.next_len])

  def test_bootstrap_value_of_cut_successors_is_exact(self):
    mean, std = map(float, action_return_stats(self.batch, gamma=0.99))
    mcfg = self.data.model
    init_fn, _, _, bootstrap_v = ilql._networks(self.config, mcfg, mean, std)
    params = init_fn(jax.random.PRNGKey(0))
    data = RandomBatches(self.batch, 32, seed=1, with_next=True)
    _, cut = next(data)
    rows = np.random.default_rng((1, 0)).integers(0, self.batch.tokens.shape[0], 32)
    whole = jax.tree.map(lambda x: x[data.next_rows[rows]], self.batch)
    np.testing.assert_allclose(bootstrap_v(params, jax.tree.map(jnp.asarray, cut)),
                               bootstrap_v(params, jax.tree.map(jnp.asarray, whole)),
                               rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
  absltest.main()
