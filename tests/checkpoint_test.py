"""Checkpoints: bit-identical resume, atomicity under SIGKILL, shape and missing-dir errors."""

import os
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import checkpoint, train
from jaxlm.algos import sft
from jaxlm.models import Transformer, TransformerConfig

N = 3  # Steps per half.
CFG = TransformerConfig(vocab_size=len(sft.ALPHABET), d_model=16, n_layers=1, n_heads=2,
                        d_ff=32, max_len=16)
_TOKENS = sft.encode(sft.make_corpus(200, 20, seed=0))


def _fresh(cfg=CFG):
  """New model, optimizer, step, state and data iterator (nothing shared between calls)."""
  model = Transformer(cfg)
  opt, schedule = train.make_optimizer(1e-2, 1, 2 * N)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32))["params"]
  state = train.TrainState.create(nn.meta.unbox(params), opt, jax.random.PRNGKey(1))
  step = train.make_train_step(sft.make_loss_fn(model), opt, schedule=schedule)
  data = sft.WindowIterator(_TOKENS, batch_size=4, seq_len=8, seed=0)
  return state, step, data


def _train(state, step, data, num_steps, ckpt=None, every=0):
  return train.train(state, step, data, num_steps=num_steps, checkpointer=ckpt,
                     checkpoint_every=every, config={"d_model": CFG.d_model},
                     tokens_per_batch=lambda b: b["inputs"].size, progress=False)[0]


def _resume(directory, num_steps):
  state, step, data = _fresh()
  ckpt = checkpoint.Checkpointer(directory)
  state, data_state, config = ckpt.restore(state)
  data.set_state(data_state)
  return _train(state, step, data, num_steps, ckpt), data_state, config


def _assert_bit_identical(test, a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  test.assertEqual(len(leaves_a), len(leaves_b))
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class CheckpointTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.straight = jax.device_get(_train(*_fresh(), 2 * N))

  def test_resume_is_bit_identical(self):
    with tempfile.TemporaryDirectory() as d:
      _train(*_fresh(), N, checkpoint.Checkpointer(d))
      resumed, data_state, config = _resume(d, 2 * N)
    self.assertEqual(data_state, {"index": N})
    self.assertEqual(config, {"d_model": CFG.d_model})
    self.assertEqual(int(resumed.step), 2 * N)
    _assert_bit_identical(self, resumed, self.straight)

  def test_sigkill_during_save_resumes_from_last_complete(self):
    with tempfile.TemporaryDirectory() as d:
      marker = os.path.join(d, "saving")
      env = {**os.environ, "PYTHONPATH": os.getcwd()}
      child = subprocess.Popen([sys.executable, __file__, "--child", d, marker], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      deadline = time.time() + 120
      while not os.path.exists(marker):
        if child.poll() is not None or time.time() > deadline:
          child.kill()
          self.fail(f"child never reached the save of step {2 * N}: {child.communicate()[0]}")
        time.sleep(0.05)
      child.send_signal(signal.SIGKILL)
      child.wait()
      ckpt_dir = os.path.join(d, "ckpt")
      self.assertTrue([n for n in os.listdir(ckpt_dir) if "tmp" in n],
                      msg=f"expected an unfinished save in {os.listdir(ckpt_dir)}")
      self.assertEqual(checkpoint.Checkpointer(ckpt_dir).latest_step(), N)
      resumed, _, _ = _resume(ckpt_dir, 2 * N)
      self.assertFalse([n for n in os.listdir(ckpt_dir) if "tmp" in n])
    _assert_bit_identical(self, resumed, self.straight)

  def test_shape_mismatch_names_parameter(self):
    with tempfile.TemporaryDirectory() as d:
      state, _, _ = _fresh()
      checkpoint.Checkpointer(d).save(0, state)
      bigger, _, _ = _fresh(CFG.replace(d_ff=64))
      with self.assertRaisesRegex(ValueError, r"'params\.block_0\.mlp\.down\.kernel' has shape "
                                  r"\(32, 16\) but the current config expects \(64, 16\)"):
        checkpoint.Checkpointer(d).restore(bigger)

  def test_missing_checkpoint_errors(self):
    with tempfile.TemporaryDirectory() as d:
      missing = os.path.join(d, "nope")
      with self.assertRaisesRegex(checkpoint.CheckpointNotFoundError, "nope does not exist"):
        checkpoint.require_checkpoint(missing)
      os.makedirs(missing)
      with self.assertRaisesRegex(ValueError, "no complete checkpoint"):
        checkpoint.require_checkpoint(missing)
      with self.assertRaisesRegex(ValueError, "no complete checkpoint"):
        checkpoint.Checkpointer(missing).restore({"x": jnp.zeros(2)})

  def test_keeps_last_n(self):
    with tempfile.TemporaryDirectory() as d:
      ckpt = checkpoint.Checkpointer(d, keep=2)
      for s in range(1, 5):
        ckpt.save(s, {"x": jnp.full((2,), s)}, data_state={"index": s})
      ckpt.wait()
      self.assertEqual(ckpt.all_steps(), [3, 4])
      state, data_state, _ = ckpt.restore({"x": jnp.zeros((2,), jnp.int32)})
      np.testing.assert_array_equal(state["x"], [4, 4])
      self.assertEqual(data_state, {"index": 4})


def _child(directory, marker):
  """Trains with a checkpoint every N steps; the save of step 2N stalls before its commit."""
  from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-import-not-at-top
  rename = atomicity.AtomicRenameTemporaryPath.finalize

  async def slow_finalize(self):
    if self._final_path.name == str(2 * N):  # pylint: disable=protected-access
      open(marker, "w").close()
      time.sleep(600)  # Killed here: all data in the tmp dir, commit file and rename pending.
    return await rename(self)

  atomicity.AtomicRenameTemporaryPath.finalize = slow_finalize
  _train(*_fresh(), 3 * N, checkpoint.Checkpointer(os.path.join(directory, "ckpt")), every=N)


if __name__ == "__main__":
  if "--child" in sys.argv:
    _child(*sys.argv[sys.argv.index("--child") + 1:])
  else:
    absltest.main()
