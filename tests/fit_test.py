"""The one training driver, `jaxlm.train.fit`: fresh runs, kills and bit-identical resumes."""

import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

from jaxlm import testing
from jaxlm import train
from jaxlm.algos import sft
from jaxlm.data.iterators import IndexedBatches, RandomBatches
from jaxlm.losses import LMOutputs, bc_loss
from jaxlm.models import Transformer, lm_networks


def _bc_run():
  """BC on a fake RL batch: (init_fn, loss_fn, data, target_update)."""
  batch = testing.fake_rl_batch(batch_size=16, length=12, vocab_size=16)
  _, init_fn, logits_fn = lm_networks(testing.tiny_model(vocab_size=16, max_len=12))

  def loss_fn(params, b, rng, *, state):
    del rng, state
    return bc_loss(LMOutputs(logits_fn(params, b.tokens, b.attention_mask)), b)
  return init_fn, loss_fn, RandomBatches(batch, 8, seed=5), 0.1  # with a Polyak target


def _sft_run():
  """Next-token SFT on the arithmetic corpus, no target network."""
  model = Transformer(testing.tiny_model(vocab_size=len(sft.ALPHABET), max_len=8))
  tokens = sft.encode(sft.make_corpus(200, 20, seed=0))
  init_fn = lambda key: model.init(key, np.zeros((1, 8), np.int32))["params"]
  return init_fn, sft.make_loss_fn(model), sft.WindowIterator(tokens, 8, 8, seed=1), None


RUNS = {"bc": _bc_run, "sft": _sft_run}


class FitTest(parameterized.TestCase):

  def _fit(self, run_dir, which, **kw):
    init_fn, loss_fn, data, target = RUNS[which]()
    return train.fit(run_dir, testing.tiny_train(), init_fn, loss_fn, data,
                     target_update=target, **kw)

  @parameterized.parameters("bc", "sft")
  def test_killed_run_resumes_bit_identically(self, which):
    with tempfile.TemporaryDirectory() as straight_dir, tempfile.TemporaryDirectory() as d:
      straight, history = self._fit(straight_dir, which)
      self.assertEqual(int(straight.step), 6)
      self.assertEqual([r["step"] for r in history if "loss" in r], [2, 4, 6])
      with testing.killed_at(IndexedBatches, 4):  # steps 1-3 ran, step 3 was checkpointed
        with self.assertRaises(testing.Interrupt):
          self._fit(d, which)
      with self.assertRaisesRegex(ValueError, "already holds checkpoints.*resume"):
        self._fit(d, which)
      resumed, resumed_history = self._fit(d, which, resume=True)
      jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)
      jax.tree.map(np.testing.assert_array_equal, resumed.opt_state, straight.opt_state)
      if RUNS[which]()[3] is not None:
        jax.tree.map(np.testing.assert_array_equal, resumed.target_params,
                     straight.target_params)
      self.assertEqual([r["loss"] for r in resumed_history if "loss" in r],
                       [r["loss"] for r in history if "loss" in r and r["step"] > 3])
      self.assertTrue(os.path.exists(os.path.join(d, "learning_curve.png")))

  def test_finished_run_is_loaded_not_retrained(self):
    with tempfile.TemporaryDirectory() as d:
      first, _ = self._fit(d, "bc")
      again, history = self._fit(d, "bc", resume=True)
      self.assertEqual(history, [])  # nothing left to train or evaluate
      jax.tree.map(np.testing.assert_array_equal, again.params, first.params)

  def test_eval_hook_runs_at_start_every_k_and_end(self):
    calls = []
    with tempfile.TemporaryDirectory() as d:
      _, history = self._fit(d, "sft", eval_every=2,
                             eval_fn=lambda s: calls.append(int(s.step)) or {"x": 1.0})
    self.assertEqual(calls, [0, 2, 4, 6])
    self.assertEqual([r["step"] for r in history if "eval/x" in r], [0, 2, 4, 6])


if __name__ == "__main__":
  absltest.main()
