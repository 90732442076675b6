"""Tests for jaxlm.search.lm (transformer propose/score, budget forcing) and the Countdown
test-time-compute pipeline jaxlm.algos.test_time (judging, pools, a smoke experiment)."""

import dataclasses
import json
import os
import tempfile

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import config as config_lib
from jaxlm import generation
from jaxlm.algos import test_time
from jaxlm.algos.test_time import evaluate, models
from jaxlm.envs import countdown
from jaxlm.envs import countdown_data
from jaxlm.models import Transformer
from jaxlm.search import lm, tree
from experiments.configs import search as search_configs

TOK = countdown_data.tokenizer()
NL = TOK.encode("\n")[0]


def tiny_model_config():
  return test_time.Config(max_len=24, model=test_time.Config().model.__class__(
      d_model=16, n_layers=1, n_heads=2, d_ff=32, pos="rope")).model_config()


def tiny_params(cfg, seed=0):
  init_fn, _, _ = lm.prm_networks(cfg)
  return nn.meta.unbox(init_fn(jax.random.PRNGKey(seed)))


class PlumbingTest(absltest.TestCase):

  def test_left_align(self):
    tokens = jnp.array([[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]])
    left, mask = lm.left_align(tokens, jnp.array([3, 1, 4]))
    np.testing.assert_array_equal(left, [[0, 5, 6, 7], [0, 0, 0, 8], [1, 2, 3, 4]])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]])

  def test_encode_prompts(self):
    prompts = models.question_prompts([countdown.Problem((2, 3, 6), 12)], 16)
    self.assertEqual(TOK.decode(prompts.tokens[0, :prompts.lengths[0]]), "12|2 3 6\n")
    self.assertEqual(prompts.tokens[0, 0], TOK.bos_id)
    with self.assertRaisesRegex(ValueError, "max_len=8"):
      models.question_prompts([countdown.Problem((2, 3, 6), 12)], 8)

  def test_search_shape(self):
    self.assertEqual(evaluate.search_shape("best_of_n", 8, 4), (1, 8))
    self.assertEqual(evaluate.search_shape("beam", 8, 4), (4, 1))
    self.assertEqual(evaluate.search_shape("dvts", 8, 4), (4, 2))
    self.assertEqual(evaluate.search_shape("beam", 2, 4), (2, 1))

  def test_pool_accuracy_by_hand(self):
    # One question, two groups of 4. Group 1: answers a, a, b, c; correct = b; scores
    # .1 .2 .9 .3 -> naive picks b (1), majority a (0), weighted a=.3 < b=.9 -> b (1).
    # Group 2: answers a, b, b, None; correct = a; scores .8 .3 .3 .9 (slot 3 invalid)
    # -> naive a (1), majority b (0), weighted a=.8 > b=.6 -> a (1).
    answers = np.array([["a", "a", "b", "c", "a", "b", "b", None]], object)
    correct = np.array([[0, 0, 1, 0, 1, 0, 0, 0]], bool)
    scores = np.array([[.1, .2, .9, .3, .8, .3, .3, .9]])
    valid = np.array([[1, 1, 1, 1, 1, 1, 1, 0]], bool)
    out = evaluate.pool_accuracy(evaluate.Pool(correct, answers, scores, valid), 4,
                               ("naive", "majority", "weighted"))
    np.testing.assert_allclose(out["naive"], [1.0])
    np.testing.assert_allclose(out["majority"], [0.0])
    np.testing.assert_allclose(out["weighted"], [1.0])
    np.testing.assert_allclose(out["pass1"], [(1 / 4 + 1 / 3) / 2])
    np.testing.assert_allclose(out["coverage"], [1.0])
    with self.assertRaisesRegex(ValueError, "groups of 3"):
      evaluate.pool_accuracy(evaluate.Pool(correct, answers, scores, valid), 3, ("naive",))


  def test_judge_votes_on_numbers_or_solutions(self):
    problem = countdown.Problem((2, 3, 6), 12)
    prompt = countdown_data.encode_prompt(TOK, problem)

    def judge(judge, text, done=True):
      ids = np.asarray(prompt + TOK.encode(text) + [TOK.eos_id], np.int32)
      return judge(0, ids, len(ids), done)

    by_number = evaluate.Judge([problem], np.array([len(prompt)]), "number")
    self.assertEqual(judge(by_number, "3+3=6|6 6\n6+6=12|12"), (False, "12"))  # 3 used twice
    self.assertEqual(judge(by_number, "3*2=6|6 6\n6+6=12|12"), (True, "12"))
    self.assertEqual(judge(by_number, "6*3=18|2 18\n18/2=9|9"), (False, "9"))
    self.assertEqual(judge(by_number, "6*3=18|2 18\n18/2=9|9", done=False), (False, None))
    self.assertEqual(judge(by_number, "6*3=18|2 18\n18|"), (False, None))  # no step at the end
    by_solution = evaluate.Judge([problem], np.array([len(prompt)]))  # the default
    self.assertEqual(judge(by_solution, "3*2=6|6 6\n 6+6=12|12 "), (True, "3*2=6|6 6\n6+6=12|12"))
    with self.assertRaisesRegex(ValueError, "vote_on"):
      evaluate.Judge([problem], np.array([len(prompt)]), "path")


class ProposeScoreTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.cfg = tiny_model_config()
    self.params = tiny_params(self.cfg)
    self.prefixes = tree.Prefixes(jnp.asarray(models.question_prompts(
        [countdown.Problem((2, 3, 6), 12), countdown.Problem((4, 5, 9, 10), 40)], 24).tokens),
                                  jnp.array([10, 13]), jnp.array([False, True]))

  def test_propose_shapes_and_determinism(self):
    sampler = lm.make_sampler(self.cfg, self.params["trunk"], step_len=5, temperature=1.0,
                              tok=TOK, delimiter=countdown_data.STEP_DELIMITER)
    propose = jax.jit(sampler.__call__, static_argnums=2)
    steps = propose(jax.random.PRNGKey(0), self.prefixes, 3)
    self.assertEqual(steps.tokens.shape, (2, 3, 5))
    self.assertEqual(steps.lengths.shape, (2, 3))
    np.testing.assert_array_equal(steps.lengths[1], 0)  # finished prefix: nothing proposed
    self.assertTrue(bool(jnp.all((steps.lengths >= 1)[0])))
    again = propose(jax.random.PRNGKey(0), self.prefixes, 3)
    np.testing.assert_array_equal(steps.tokens, again.tokens)
    # A step is done iff it ends with <eos> or never reached a delimiter within step_len.
    tok, length = np.asarray(steps.tokens[0]), np.asarray(steps.lengths[0])
    last = tok[np.arange(3), length - 1]
    ended = np.isin(last, [NL, TOK.eos_id])
    np.testing.assert_array_equal(steps.done[0], (last == TOK.eos_id) | ~ended)
    # Greedy proposals are identical and match one greedy decode.
    greedy = lm.make_sampler(self.cfg, self.params["trunk"], step_len=5, temperature=0.0,
                             tok=TOK, delimiter=countdown_data.STEP_DELIMITER)
    g = greedy(jax.random.PRNGKey(1), self.prefixes, 2)
    np.testing.assert_array_equal(g.tokens[0, 0], g.tokens[0, 1])

  def test_score_matches_direct_forward(self):
    _, values_fn, _ = lm.prm_networks(self.cfg)
    scorer = lm.PRMScorer(self.params, values_fn)
    v = scorer(self.prefixes)
    self.assertEqual(v.shape, (2,))
    direct = values_fn(self.params, self.prefixes.tokens[:1, :10], jnp.ones((1, 10)))
    np.testing.assert_allclose(v[0], direct[0, 9], rtol=1e-5)


TTOK = countdown_data.trace_tokenizer()


class BudgetForcingTest(absltest.TestCase):
  """Budget forcing and NoThinking through the real jitted decode, against a reference built
  from single-row greedy ``generation.generate`` calls."""

  def setUp(self):
    super().setUp()
    self.cfg = dataclasses.replace(tiny_model_config(), vocab_size=TTOK.vocab_size, max_len=40)
    self.params = tiny_params(self.cfg)["trunk"]
    self.problems = [countdown.Problem((2, 3, 6), 12), countdown.Problem((4, 5, 9, 10), 40)]
    self.sampler = lm.make_thinking_sampler(
        self.cfg, self.params, answer_len=5, temperature=0.0, tok=TTOK,
        think_open=countdown_data.THINK_OPEN, think_close=countdown_data.THINK_CLOSE,
        answer_prefix=countdown_data.ANSWER_PREFIX)

  def greedy(self, ids, n, stop):
    out = generation.generate(Transformer(self.cfg), self.params, jnp.asarray([ids]),
                              max_new_tokens=n, temperature=0.0, stop_tokens=stop)
    return list(np.asarray(out.tokens_BxN[0, :int(out.lengths_B[0])]))

  def check(self, seqs, spent, prompts, expected_continuations):
    for b, cont in enumerate(expected_continuations):
      start, end = int(prompts.lengths[b]), int(seqs.lengths[b])
      np.testing.assert_array_equal(seqs.tokens[b, :start], prompts.tokens[b, :start])
      self.assertEqual(list(np.asarray(seqs.tokens[b, start:end])), cont, msg=f"row {b}")
      self.assertEqual(int(spent[b]), len(cont), msg=f"row {b}")

  def test_thinking_forced_and_self_closed(self):
    budget, s = 3, self.sampler
    prompts = models.question_prompts(self.problems, 16, TTOK, countdown_data.THINK_OPEN)
    prompt_ids = [list(np.asarray(prompts.tokens[b, :prompts.lengths[b]])) for b in range(2)]
    first = self.greedy(prompt_ids[0], 1, ())[0]
    # Run 1: "}" as the close token (the random model does not emit it: both rows forced).
    # Run 2: row 0's first greedy token plays the close token, so row 0 closes by itself.
    for close in (s.think_close, int(first)):
      sampler = s.replace(think_close=close)
      think = jax.jit(lm.ThinkingSampler.thinking, static_argnums=3)
      seqs, spent, forced = think(sampler, jax.random.PRNGKey(0), prompts, budget)
      expected, expected_forced = [], []
      for ids in prompt_ids:
        gen = self.greedy(ids, budget, (close, TTOK.eos_id))
        cut = close not in gen and TTOK.eos_id not in gen
        prefix = gen[:budget] + (list(s.forced_ids) if cut else [])
        answer = [] if TTOK.eos_id in gen else self.greedy(ids + prefix, 5, (TTOK.eos_id,))
        expected.append(prefix + answer)
        expected_forced.append(cut)
      np.testing.assert_array_equal(forced, expected_forced)
      self.check(seqs, spent, prompts, expected)
      if close == s.think_close:
        self.assertTrue(all(expected_forced))
        self.assertEqual(TTOK.decode(expected[0][budget:budget + len(s.forced_ids)]),
                         countdown_data.THINK_CLOSE + countdown_data.ANSWER_PREFIX)
      else:
        self.assertEqual(expected_forced[0], False)
        self.assertEqual(expected[0][0], first)

  def test_nothinking_prefill(self):
    prompts = models.question_prompts(self.problems, 16, TTOK)
    seqs, spent = jax.jit(lm.ThinkingSampler.nothinking)(
        self.sampler, jax.random.PRNGKey(0), prompts)
    prefill = list(self.sampler.prefill_ids)
    self.assertEqual(TTOK.decode(prefill), "{}Answer:\n")
    expected = []
    for b in range(2):
      ids = list(np.asarray(prompts.tokens[b, :prompts.lengths[b]]))
      expected.append(prefill + self.greedy(ids + prefill, 5, (TTOK.eos_id,)))
    self.check(seqs, spent, prompts, expected)


class EndToEndTest(absltest.TestCase):

  def test_smoke_preset(self):
    d = search_configs.get_config("smoke").to_dict()
    d.update(budgets=(1, 2), strategies=("best_of_n", "beam"))
    config = config_lib.from_dict(test_time.Config, d)
    with tempfile.TemporaryDirectory() as workdir:
      results = test_time.train_and_evaluate(config, workdir)
      with open(os.path.join(workdir, "results.json")) as f:
        saved = json.load(f)
      names = ["best_of_n_naive", "best_of_n_majority", "best_of_n_weighted", "beam",
               "compute_optimal", "best_single", "best_single_cv"]
      for name in names:
        self.assertEqual(sorted(saved[name]), ["1", "2"], msg=name)
        self.assertTrue(all(0.0 <= v <= 1.0 for v in saved[name].values()), msg=name)
      self.assertEqual(set(results), set(names) | {"gain_over_best_of_n_weighted"})
      for name in ("report.json", "accuracy_vs_budget.png", "accuracy_vs_budget_hard.png",
                   "prm_labels.npz"):
        self.assertTrue(os.path.exists(os.path.join(workdir, name)), msg=name)
      with np.load(os.path.join(workdir, "accuracy.npz")) as f:  # per question: means = results
        acc, saved_names = f["accuracy_QxCxB"], list(f["names"])
        np.testing.assert_array_equal(f["budgets"], [1, 2])
      self.assertEqual(acc.shape, (config.eval_problems, len(saved_names), 2))
      np.testing.assert_allclose(acc[:, saved_names.index("beam")].mean(0),
                                 [saved["beam"]["1"], saved["beam"]["2"]], rtol=1e-6)
      with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
      self.assertEqual(sum(report["bin_sizes"]), config.eval_problems)
      self.assertTrue(report["prm_auc"] is None or 0.0 <= report["prm_auc"] <= 1.0)
      with self.assertRaisesRegex(ValueError, "already holds checkpoints"):
        test_time.train_and_evaluate(config, workdir)

  def test_smoke_budget_forcing_only(self):
    d = search_configs.get_config("smoke").to_dict()
    d.update(strategies=(), thinking_budgets=(2, 6), thinking_samples=2, num_numbers=(3,),
             trace_max_len=320)
    config = config_lib.from_dict(test_time.Config, d)
    with tempfile.TemporaryDirectory() as workdir:
      self.assertEqual(test_time.train_and_evaluate(config, workdir), {})
      self.assertFalse(os.path.exists(os.path.join(workdir, "results.json")))
      self.assertTrue(os.path.isdir(os.path.join(workdir, "policy")))  # the warm start
      with open(os.path.join(workdir, "budget_forcing.json")) as f:
        out = json.load(f)
    self.assertEqual(sorted(out["thinking"]), ["2", "6"])
    self.assertEqual(sorted(out["nothinking"]["pass@k"]), ["1", "2"])
    prefill = len(countdown_data.THINK_OPEN + countdown_data.THINK_CLOSE
                  + countdown_data.ANSWER_PREFIX)
    self.assertGreaterEqual(out["nothinking"]["tokens"], prefill)
    for b, entry in out["thinking"].items():  # at most B thinking tokens + forced + answer
      self.assertLessEqual(entry["tokens"], int(b) + 2 * prefill + 2 * config.step_len)
      self.assertTrue(0.0 <= entry["forced"] <= 1.0)
    self.assertIn(out["equal_tokens"]["2"]["nothinking_samples"], (1, 2))
    self.assertGreater(out["trace_rows"], 0)
    self.assertEqual(out["trace_init"], "policy")

  def test_config_errors(self):
    with self.assertRaisesRegex(ValueError, "strategies"):
      test_time.Config(strategies=("mcts",))
    with self.assertRaisesRegex(ValueError, "vote_on"):
      test_time.Config(vote_on="path")
    with self.assertRaisesRegex(ValueError, "prm_label"):
      test_time.Config(prm_label="max")
    with self.assertRaisesRegex(ValueError, "trace_init"):
      test_time.Config(trace_init="hf")
    with self.assertRaisesRegex(ValueError, "unknown Config config key"):
      config_lib.from_dict(test_time.Config, {"beam": 4})


if __name__ == "__main__":
  absltest.main()
