"""e3 pipeline pieces: SFT rows, the verifier reward, truncation lengths, the entry point."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from experiments.configs import apr as apr_configs
from experiments.configs import e3 as e3_configs
from jaxlm import config as config_lib
from jaxlm import testing
from jaxlm.algos import apr
from jaxlm.algos import e3
from jaxlm.envs import countdown
from jaxlm.envs import countdown_attempts
from jaxlm.envs import countdown_data
from jaxlm.models import Transformer, TransformerConfig
from jaxlm.search import decoding

PROBLEMS = [countdown.Problem((2, 3, 4), 24), countdown.Problem((1, 5, 6), 30)]
MANY = countdown_data.make_problems((3,), 400, "train", seed=0, max_number=12, max_target=50)


def traces(batch):
  """The attempt chain of each SFT row (its action tokens before <eos>)."""
  tok = countdown_data.trace_tokenizer()
  return [tok.decode(tokens[act > 0][:-1])
          for tokens, act in zip(np.asarray(batch.tokens), np.asarray(batch.action_mask))]


class E3Test(absltest.TestCase):

  def test_sft_rows_are_prompt_then_attempt_chain(self):
    batch = e3.sft_batch(PROBLEMS, max_attempts=3, max_len=400, seed=0)
    tok = countdown_data.trace_tokenizer()
    for row, problem in zip(range(2), PROBLEMS):
      tokens, act = np.asarray(batch.tokens[row]), np.asarray(batch.action_mask[row]) > 0
      prompt = countdown_data.encode_prompt(tok, problem)
      np.testing.assert_array_equal(tokens[:len(prompt)], prompt)
      self.assertFalse(act[:len(prompt)].any())
      action = tokens[act]
      self.assertEqual(action[-1], tok.eos_id)
      text = tok.decode(action[:-1])
      attempts, answer = countdown_attempts.parse_attempts(text)
      self.assertBetween(len(attempts), 1, 3)
      self.assertTrue(countdown.verify(problem, text)[0])
    with self.assertRaisesRegex(ValueError, "fits max_len=8"):
      e3.sft_batch(PROBLEMS, 3, max_len=8, seed=0)

  def test_sft_give_up_rows_fail_every_attempt(self):
    problems = MANY[:200]
    def endings(give_up):
      out = []
      for text, problem in zip(traces(e3.sft_batch(problems, 3, max_len=400, seed=1,
                                                   give_up=give_up)), problems):
        attempts, answer = countdown_attempts.parse_attempts(text)
        self.assertEqual(countdown_attempts.check_verdicts(problem, attempts), 1.0)
        out.append(answer is None)
        if answer is None:  # every attempt of a give-up row is a true failure
          self.assertFalse(any(a.goal for a in attempts))
          self.assertFalse(countdown.verify(problem, text)[0])
      return np.array(out)
    self.assertFalse(endings(0.0).any())
    self.assertTrue(endings(1.0).all())
    self.assertBetween(endings(0.3).mean(), 0.2, 0.4)  # 200 draws of p=0.3: sd 0.03

  def test_sft_retry_draws_attempt_counts_geometrically(self):
    def counts(retry):
      batch = e3.sft_batch(MANY, 6, max_len=1024, seed=2, retry=retry)
      return np.array([len(countdown_attempts.parse_attempts(t)[0]) for t in traces(batch)])
    np.testing.assert_array_equal(counts(0.0), 1)  # never another attempt
    drawn = counts(0.5)
    self.assertLessEqual(drawn.max(), 6)
    # P(k) = 0.5^(k-1) / (1 - 0.5^6) for k = 1..6: P(1) = 32/63, mean 120/63 = 1.905; a
    # problem whose near misses keep hitting the target may hold fewer failed attempts.
    self.assertBetween(np.mean(drawn == 1), 32 / 63 - 0.08, 32 / 63 + 0.08)  # sd 0.025
    self.assertBetween(drawn.mean(), 1.905 - 0.2, 1.905 + 0.1)  # sd of the mean ~0.06
    self.assertGreater(np.mean(drawn >= 4), 0.06)  # 8/63 = 0.127: the tail is drawn
    with self.assertRaisesRegex(ValueError, "retry=1.0"):
      e3.Config(retry=1.0)

  def test_reward_is_the_verifier(self):
    task = e3.attempts_task(PROBLEMS, PROBLEMS[:1])
    tok = countdown_data.trace_tokenizer()
    good = countdown_attempts.format_attempts(PROBLEMS[0], [("3*2=6|4 6", "6*4=24|24")])
    bad = countdown_attempts.format_attempts(PROBLEMS[0], [("4+3=7|2 7", "7*2=14|14")])
    self.assertEqual(task.reward("train", 0, tok.encode(good)), 1.0)
    self.assertEqual(task.reward("train", 0, tok.encode(bad)), 0.0)
    self.assertEqual(task.reward("eval", 0, tok.encode(good)), 1.0)

  def test_rollout_stats_by_hand(self):
    tok = countdown_data.trace_tokenizer()
    traces = [countdown_attempts.format_attempts(PROBLEMS[0], [("4+3=7|2 7", "7*2=14|14"),
                                                               ("3*2=6|4 6", "6*4=24|24")]),
              countdown_attempts.format_attempts(PROBLEMS[1], [("6-5=1|1 1",)])]  # gives up
    script = testing.ScriptedDecoder(
        [countdown_data.prompt_text(p) + t for p, t in zip(PROBLEMS, traces)], tok)
    full = [len(t) + 1 for t in traces]  # with <eos>: 128 and 48 tokens
    for env in (True, False):
      stats = e3.rollout_stats(script, PROBLEMS, budget=128, samples=2, seed=0,
                               env_verdicts=env)
      self.assertEqual({k: stats[k] for k in ("pass@1", "mean_attempts", "give_up",
                                              "false_goal", "truncated", "malformed")},
                       {"pass@1": 0.5, "mean_attempts": 1.5, "give_up": 0.5,
                        "false_goal": 0.0, "truncated": 0.0, "malformed": 0.0})
      np.testing.assert_array_equal(stats["lengths"], np.repeat(full, 2))
      np.testing.assert_array_equal(stats["solved"], [1.0, 1.0, 0.0, 0.0])
      self.assertEqual(stats["mean_length"], np.mean(full))
    # A budget of 60 cuts the solved trace in its second attempt: no answer, length inf.
    stats = e3.rollout_stats(script, PROBLEMS, budget=60, samples=1, seed=0, env_verdicts=True)
    np.testing.assert_array_equal(stats["lengths"], [np.inf, full[1]])
    self.assertEqual((stats["pass@1"], stats["truncated"], stats["mean_attempts"]),
                     (0.0, 0.5, 1.5))

  def test_rollout_stats_of_a_transformer(self):
    tok = countdown_data.trace_tokenizer()
    cfg = TransformerConfig(vocab_size=tok.vocab_size, d_model=16, n_layers=1, n_heads=2,
                            d_ff=32, max_len=64, pos="rope")
    model = Transformer(cfg)
    params = model.init(jax.random.key(0), np.zeros((1, 4), np.int32))["params"]
    decode = decoding.make_decode(model, params, temperature=1.0, pad_id=tok.pad_id)
    stats = e3.rollout_stats(decode, PROBLEMS, budget=6, samples=3, seed=0, env_verdicts=True)
    lengths = stats["lengths"]
    self.assertEqual(lengths.shape, (6,))
    # A random policy rarely stops within 6 tokens: those rows are inf, the rest <= 6.
    finite = lengths[np.isfinite(lengths)]
    self.assertTrue(np.all(finite <= 6))
    self.assertBetween(stats["mean_length"], 1.0, 6.0)
    self.assertEqual(stats["pass@1"], 0.0)

  def test_paper_preset_is_the_apr_papers_model_with_e3s_rl(self):
    config = config_lib.from_dict(e3.Config, e3_configs.get_config("paper").to_dict())
    apr_model = config_lib.from_dict(
        apr.Config, apr_configs.get_config("paper").to_dict()).countdown.model
    self.assertEqual(config.countdown.model, apr_model)
    self.assertEqual(config.rl.train.batch_size // config.rl.group_size, 128)  # prompts
    self.assertEqual((config.rl.train.lr, config.rl.kl_coef, config.rl.sampling.temperature),
                     (1e-6, 0.001, 0.6))
    self.assertEqual({d for d, _ in config.stages}, set(config.countdown.num_numbers))

  def test_smoke_entry_writes_every_mode(self):
    c = e3_configs.get_config("smoke")
    c.update(modes=("positive_only",), stages=((3, 1),))
    config = config_lib.from_dict(e3.Config, c.to_dict())
    with tempfile.TemporaryDirectory() as d:
      results = e3.train_and_evaluate(config, d)
      with open(os.path.join(d, "results.json")) as f:
        self.assertEqual(json.load(f), results)
      self.assertEqual(set(results), {"sft", "positive_only"})
      row = results["positive_only"]
      self.assertIn(row["stage_budgets"][0], config.budgets)
      for k in ("accuracy_at_1x", "accuracy_at_2x"):
        self.assertBetween(row[k], 0.0, 1.0)
      self.assertEqual([r["budget"] for r in row["by_budget"]],
                       [int(k * row["budget"]) for k in config.budget_multiples])
      self.assertEqual(row["by_budget"][0]["pass@1"], row["accuracy_at_1x"])
      self.assertEqual((results["sft"]["budget"], results["sft"]["stage_budgets"]),
                       (row["budget"], []))  # SFT read at the first mode's budget
      # Equal samples per problem: the mean per-problem gain is the gain of the means.
      self.assertAlmostEqual(row["gain_2x"], row["accuracy_at_2x"] - row["accuracy_at_1x"])
      self.assertTrue(np.isnan(row["gain_2x_ci95"]) or row["gain_2x_ci95"] >= 0.0)
      self.assertBetween(row["give_up"] + row["false_goal"] + row["truncated"]
                         + row["malformed"], 0.0, 1.0)
      self.assertIn("positive_only  acc@1x", e3.summary(results))
      self.assertTrue(os.path.exists(os.path.join(d, "accuracy_vs_budget.png")))
      self.assertTrue(os.path.exists(os.path.join(d, "positive_only", "stage0",
                                                  "metrics.jsonl")))
    with self.assertRaisesRegex(ValueError, "difficulties \\[5\\]"):
      e3.Config(stages=((5, 1),))
    with self.assertRaisesRegex(ValueError, "modes and stages"):
      e3.Config(stages=())
    with self.assertRaisesRegex(ValueError, "miscount=1.5 must be a share"):
      e3.Config(miscount=1.5)
    with self.assertRaisesRegex(ValueError, "must include 1 and 2"):
      e3.Config(budget_multiples=(1.0, 4.0))

  def test_across_runs_by_hand(self):
    def run(d, acc, attempts_last):
      row = {k: 0.5 for k in e3._FINAL_KEYS}
      os.makedirs(os.path.join(d, "full", "stage0"))
      with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"sft": dict(row, stage_budgets=[]),
                   "full": dict(row, accuracy_at_1x=acc, stage_budgets=[256])}, f)
      with open(os.path.join(d, "full", "stage0", "metrics.jsonl"), "w") as f:
        for step, attempts in ((0, 2.0), (5, 3.0), (10, attempts_last)):
          f.write(json.dumps({"step": step, "eval/mean_attempts": attempts,
                              "eval/mean_length": 10.0 * attempts, "eval/give_up": 0.5}) + "\n")
          f.write(json.dumps({"step": step, "loss": 1.0}) + "\n")  # no evaluation here
      return d

    with tempfile.TemporaryDirectory() as d:
      runs = [run(os.path.join(d, "a"), 0.2, 4.0), run(os.path.join(d, "b"), 0.4, 5.0)]
      out = e3.across_runs(runs)
      self.assertEqual(set(out), {"sft", "full"})
      np.testing.assert_allclose(out["full"]["accuracy_at_1x"], (0.3, 0.02 ** 0.5))
      np.testing.assert_allclose(out["full"]["stage0/mean_attempts/first"], (2.0, 0.0))
      np.testing.assert_allclose(out["full"]["stage0/mean_attempts/last"], (4.5, 0.5 ** 0.5))
      np.testing.assert_allclose(out["full"]["stage0/mean_length/last"], (45.0, 50 ** 0.5))
      self.assertEqual(out["sft"]["mean_length"], (0.5, 0.0))
      self.assertNotIn("stage0/give_up/first", out["sft"])
      self.assertEqual(e3.across_runs(runs[:1])["full"]["accuracy_at_1x"], (0.2, 0.0))
      os.remove(os.path.join(runs[1], "full", "stage0", "metrics.jsonl"))
      with open(os.path.join(runs[1], "full", "stage0", "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 0, "loss": 1.0}) + "\n")
      with self.assertRaisesRegex(ValueError, "full stage 0 has no evaluation"):
        e3.across_runs(runs)


if __name__ == "__main__":
  absltest.main()
