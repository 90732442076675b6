"""Supervised entry point: tiny end-to-end run, corpus/tokenizer/iterator, config flags."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import numpy as np

from jaxlm import checkpoint
from jaxlm import config as config_lib
from jaxlm.algos import sft
from experiments.configs import sft as sft_configs

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(**overrides) -> sft.Config:
  d = sft_configs.get_config("tiny").to_dict()
  d.update(overrides)
  return config_lib.from_dict(sft.Config, d)


def _run_cli(*args):
  return subprocess.run([sys.executable, "-m", "experiments.sft", *args], cwd=_REPO,
                        capture_output=True, text=True, timeout=300,
                        env={**os.environ, "PYTHONPATH": _REPO})


class SftTest(absltest.TestCase):

  def test_tiny_end_to_end(self):
    with tempfile.TemporaryDirectory() as workdir:
      results = sft.train_and_evaluate(_tiny(), workdir)
      for name in ("metrics.jsonl", "learning_curve.png", "results.json"):
        self.assertTrue(os.path.exists(os.path.join(workdir, name)), msg=name)
      self.assertEqual(checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")).all_steps(),
                       [3, 6])
      with self.assertRaisesRegex(ValueError, "already holds checkpoints"):
        sft.train_and_evaluate(_tiny(), workdir)
      resumed = sft.train_and_evaluate(_tiny(), workdir, resume=True)  # Already at the end.
    self.assertEqual(results["steps"], 6)
    self.assertEqual(resumed["steps"], 6)
    # Uniform over 16 symbols is perplexity 16; even 6 steps must move below the start.
    self.assertBetween(results["initial_perplexity"], 12.0, 25.0)
    self.assertLess(results["final_perplexity"], results["initial_perplexity"])

  def test_resume_without_checkpoint_is_clear(self):
    with tempfile.TemporaryDirectory() as workdir:
      with self.assertRaisesRegex(checkpoint.CheckpointNotFoundError,
                                  "checkpoints does not exist"):
        sft.train_and_evaluate(_tiny(), workdir, resume=True)

  def test_corpus_tokenizer_iterator(self):
    text = sft.make_corpus(50, 99, seed=3)
    self.assertEqual(text, sft.make_corpus(50, 99, seed=3))
    for line in text.strip().split("\n"):  # Every line is a true arithmetic fact.
      lhs, rhs = line.split("=")
      self.assertEqual(eval(lhs), int(rhs), msg=line)  # pylint: disable=eval-used
    self.assertEqual(sft.decode(sft.encode(text)), text)
    with self.assertRaisesRegex(ValueError, "character 'x' is not in the alphabet"):
      sft.encode("1x2")
    tokens = sft.encode(text)
    it = sft.WindowIterator(tokens, batch_size=4, seq_len=8, seed=0)
    first, second = next(it), next(it)
    np.testing.assert_array_equal(first["inputs"][:, 1:], first["targets"][:, :-1])
    again = sft.WindowIterator(tokens, batch_size=4, seq_len=8, seed=0)
    again.set_state({"index": 1})
    np.testing.assert_array_equal(next(again)["inputs"], second["inputs"])

  def test_config_validation(self):
    with self.assertRaisesRegex(ValueError, r"unknown Config config key\(s\) \['bogus'\]"):
      _tiny(bogus=1)
    with self.assertRaisesRegex(ValueError,
                                r"unknown TransformerConfig config key\(s\) \['width'\]"):
      _tiny(model={"width": 3})
    with self.assertRaisesRegex(ValueError, "seq_len=99 exceeds model.max_len=32"):
      _tiny(seq_len=99)
    with self.assertRaisesRegex(ValueError, "unknown sft preset 'huge'"):
      sft_configs.get_config("huge")

  def test_cli_preset_overrides_and_unknown_key(self):
    with tempfile.TemporaryDirectory() as workdir:
      ok = _run_cli("--config=experiments/configs/sft.py:tiny", "--config.train.num_steps=2",
                    "--config.model.d_model=16", f"--workdir={workdir}")
      self.assertEqual(ok.returncode, 0, msg=ok.stderr[-3000:])
      with open(os.path.join(workdir, "results.json")) as f:
        self.assertEqual(json.load(f)["steps"], 2)
      step_dir = os.path.join(workdir, "checkpoints", "2", "config")
      saved = json.load(open(os.path.join(step_dir, os.listdir(step_dir)[0])))
      self.assertEqual(saved["model"]["d_model"], 16)
    bad = _run_cli("--config=experiments/configs/sft.py:tiny", "--config.model.widht=3")
    self.assertNotEqual(bad.returncode, 0)
    self.assertIn("widht", bad.stderr)


if __name__ == "__main__":
  absltest.main()
