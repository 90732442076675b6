"""Issue 16, class 3: --resume checks the config, needs a checkpoint, loses or repeats nothing."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from jaxlm import checkpoint, metrics, testing, train
from jaxlm import config as config_lib
from jaxlm.algos import bc, ilql, mc, online, sft
from jaxlm.data.iterators import IndexedBatches
from experiments.configs import sft as sft_configs


def _fit(run_dir, resume=False, **overrides):
  return train.fit(run_dir, testing.tiny_train(**overrides), testing.linear_init,
                   testing.linear_loss, testing.LinearData(), resume=resume)


def _strict_json(path):
  def refuse(constant):
    raise ValueError(f"{path} is not strict JSON: {constant}")
  with open(path) as f:
    return json.load(f, parse_constant=refuse)


class ResumeTest(absltest.TestCase):

  def test_config_change_is_an_error_naming_the_fields(self):
    with tempfile.TemporaryDirectory() as d:
      done, _ = _fit(d)
      with self.assertRaisesRegex(ValueError, r"config differs.*lr: 0\.001 -> 0\.002; "
                                  r"seed: 0 -> 1\..*allow_config_change"):
        _fit(d, resume=True, lr=2e-3, seed=1)
      again, history = _fit(d, resume=True, log_every=3)  # run policy: not a change
      self.assertEqual(history, [])
      allowed, _ = _fit(d, resume=True, lr=2e-3, allow_config_change=True)
    jax.tree.map(np.testing.assert_array_equal, allowed.params, done.params)

  def test_metrics_after_the_last_checkpoint_are_not_repeated(self):
    with tempfile.TemporaryDirectory() as straight_dir, tempfile.TemporaryDirectory() as d:
      _fit(straight_dir, log_every=1)
      with testing.killed_at(IndexedBatches, 5):  # steps 1-4 logged, step 3 checkpointed
        with self.assertRaises(testing.Interrupt):
          _fit(d, log_every=1)
      with open(os.path.join(d, "metrics.jsonl"), "a") as f:
        f.write('{"step": 5, "lo')  # a row cut by the kill
      _fit(d, resume=True, log_every=1)
      rows, expected = metrics.read_metrics(d), metrics.read_metrics(straight_dir)
    self.assertEqual([r["step"] for r in rows], [1, 2, 3, 4, 5, 6])
    self.assertEqual([r["loss"] for r in rows], [r["loss"] for r in expected])

  def test_resume_needs_a_checkpoint_in_the_workdir(self):
    with tempfile.TemporaryDirectory() as d:
      for algo in (bc, mc, ilql):
        for workdir in (d, os.path.join(d, "typo")):  # empty, mistyped
          with self.assertRaisesRegex(checkpoint.CheckpointNotFoundError,
                                      "no complete checkpoint"):
            algo.train_and_evaluate(algo.Config(), workdir, resume=True)
        for task in online.TASKS:  # GRPO / PPO entry points
          with self.assertRaisesRegex(checkpoint.CheckpointNotFoundError,
                                      "no complete checkpoint"):
            online.train_and_evaluate(online.Config(task=task), workdir, resume=True)
      self.assertEqual(os.listdir(d), [])  # nothing written, no dataset cached

  def test_sft_resume_keeps_every_result(self):
    config = config_lib.from_dict(sft.Config, sft_configs.get_config("tiny").to_dict())
    with tempfile.TemporaryDirectory() as d:
      with testing.killed_at(IndexedBatches, 4):  # steps 1-3 ran, step 3 was checkpointed
        with self.assertRaises(testing.Interrupt):
          sft.train_and_evaluate(config, d)
      resumed = sft.train_and_evaluate(config, d, resume=True)
      path = os.path.join(d, "results.json")
      self.assertEqual(_strict_json(path), resumed)
      self.assertIsInstance(resumed["initial_perplexity"], float)
      self.assertLess(resumed["final_perplexity"], resumed["initial_perplexity"])
      finished = sft.train_and_evaluate(config, d, resume=True)  # nothing left to train
      self.assertEqual(finished, resumed)
      self.assertEqual(_strict_json(path), resumed)


if __name__ == "__main__":
  absltest.main()
