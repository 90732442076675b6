"""Issue 16, class 4: damaged newest checkpoints are skipped, interrupted first saves ignored.

Fault injection on a finished 6-step run (checkpoints 3 and 6): truncate, empty or delete pieces
of step 6, then resume; the run falls back to step 3 and ends with the uninterrupted params.
"""

import glob
import os
import shutil
import tempfile

from absl.testing import absltest, parameterized
import jax
import numpy as np

from jaxlm import checkpoint, testing, train


def _fit(run_dir, resume=False):
  return train.fit(run_dir, testing.tiny_train(), testing.linear_init, testing.linear_loss,
                   testing.LinearData(), resume=resume)[0]


def _damage(step_dir, piece, how):
  """Truncates to half, empties or deletes every path matching `step_dir/piece`."""
  paths = glob.glob(os.path.join(step_dir, piece))
  assert paths, f"nothing matches {piece} in {os.listdir(step_dir)}"
  for path in paths:
    if how == "delete":
      shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    else:
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2 if how == "truncate" else 0)


class CheckpointFaultTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.template = tempfile.mkdtemp()
    cls.straight = jax.device_get(_fit(cls.template).params)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.template)
    super().tearDownClass()

  def _tempdir(self):
    d = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, d)
    return d

  def _copy(self):
    run_dir = os.path.join(self._tempdir(), "run")
    shutil.copytree(self.template, run_dir)
    return run_dir, os.path.join(run_dir, "checkpoints")

  def _assert_straight(self, state):
    self.assertEqual(int(state.step), 6)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), self.straight)

  @parameterized.parameters(("state/_METADATA", "truncate"), ("state/d/*", "empty"),
                            ("state/d/*", "truncate"), ("state/manifest.ocdbt", "empty"),
                            ("state", "delete"), ("data/metadata", "truncate"),
                            ("data", "delete"), ("config/metadata", "empty"),
                            ("config", "delete"))
  def test_damaged_newest_is_skipped_and_kept(self, piece, how):
    run_dir, ckpt_dir = self._copy()
    _damage(os.path.join(ckpt_dir, "6"), piece, how)
    with self.assertLogs("absl", "WARNING") as logs:
      self._assert_straight(_fit(run_dir, resume=True))
    self.assertRegex("\n".join(logs.output), "checkpoint step 6 in .* cannot be read")
    aside = glob.glob(os.path.join(ckpt_dir, "6.corrupt.*"))
    self.assertLen(aside, 1)  # set aside, never deleted
    self.assertEqual(checkpoint.Checkpointer(ckpt_dir).all_steps(), [3, 6])

  def test_no_readable_checkpoint_names_every_step(self):
    run_dir, ckpt_dir = self._copy()
    for step in ("3", "6"):
      _damage(os.path.join(ckpt_dir, step), "state/_METADATA", "empty")
    with self.assertRaisesRegex(checkpoint.CorruptCheckpointError,
                                r"no readable checkpoint .*step 6: JSONDecodeError.*; step 3: "):
      _fit(run_dir, resume=True)
    with self.assertRaisesRegex(checkpoint.CorruptCheckpointError, r"^[^;]*step 3: JSON"):
      checkpoint.Checkpointer(ckpt_dir).restore(testing.linear_state(testing.tiny_train()),
                                                step=3)
    self.assertEqual(sorted(os.listdir(ckpt_dir)), ["3", "6"])  # nothing moved or deleted

  def test_interrupted_first_save_is_no_checkpoint(self):
    for resume in (False, True):
      run_dir = self._tempdir()
      ckpt_dir = os.path.join(run_dir, "checkpoints")
      # What a kill before the rename that commits the first save leaves behind.
      shutil.copytree(os.path.join(self.template, "checkpoints", "3"),
                      os.path.join(ckpt_dir, "3.orbax-checkpoint-tmp"))
      if resume:
        checkpoint.require_checkpoint(ckpt_dir)  # the run started here: no error
      self._assert_straight(_fit(run_dir, resume=resume))
      self.assertEqual(sorted(os.listdir(ckpt_dir)), ["3", "6"])


if __name__ == "__main__":
  absltest.main()
