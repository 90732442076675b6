"""Tests for jaxlm.algos.search: transformer propose/score, judging, and a smoke experiment."""

import json
import os
import tempfile

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.algos import prm
from jaxlm.algos import search
from jaxlm.envs import countdown
from jaxlm.search import tree
from experiments.configs import search as search_configs

TOK = prm.tokenizer()
NL = TOK.encode("\n")[0]


def tiny_model_config():
  return search.Config(max_len=24, model=search.Config().model.__class__(
      d_model=16, n_layers=1, n_heads=2, d_ff=32, pos="rope")).model_config()


def tiny_params(cfg, seed=0):
  init_fn, _, _ = prm.prm_networks(cfg)
  return nn.meta.unbox(init_fn(jax.random.PRNGKey(seed)))


class PlumbingTest(absltest.TestCase):

  def test_left_align(self):
    tokens = jnp.array([[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]])
    left, mask = search.left_align(tokens, jnp.array([3, 1, 4]))
    np.testing.assert_array_equal(left, [[0, 5, 6, 7], [0, 0, 0, 8], [1, 2, 3, 4]])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]])

  def test_encode_prompts(self):
    prompts = search.encode_prompts([countdown.Problem((2, 3, 6), 12)], 16)
    self.assertEqual(TOK.decode(prompts.tokens[0, :prompts.lengths[0]]), "12|2 3 6\n")
    self.assertEqual(prompts.tokens[0, 0], TOK.bos_id)
    with self.assertRaisesRegex(ValueError, "max_len=8"):
      search.encode_prompts([countdown.Problem((2, 3, 6), 12)], 8)

  def test_search_shape(self):
    self.assertEqual(search.search_shape("best_of_n", 8, 4), (1, 8))
    self.assertEqual(search.search_shape("beam", 8, 4), (4, 1))
    self.assertEqual(search.search_shape("dvts", 8, 4), (4, 2))
    self.assertEqual(search.search_shape("beam", 2, 4), (2, 1))

  def test_pool_accuracy_by_hand(self):
    # One question, two groups of 4. Group 1: answers a, a, b, c; correct = b; scores
    # .1 .2 .9 .3 -> naive picks b (1), majority a (0), weighted a=.3 < b=.9 -> b (1).
    # Group 2: answers a, b, b, None; correct = a; scores .8 .3 .3 .9 (slot 3 invalid)
    # -> naive a (1), majority b (0), weighted a=.8 > b=.6 -> a (1).
    answers = np.array([["a", "a", "b", "c", "a", "b", "b", None]], object)
    correct = np.array([[0, 0, 1, 0, 1, 0, 0, 0]], bool)
    scores = np.array([[.1, .2, .9, .3, .8, .3, .3, .9]])
    valid = np.array([[1, 1, 1, 1, 1, 1, 1, 0]], bool)
    out = search.pool_accuracy(search.Pool(correct, answers, scores, valid), 4,
                               ("naive", "majority", "weighted"))
    np.testing.assert_allclose(out["naive"], [1.0])
    np.testing.assert_allclose(out["majority"], [0.0])
    np.testing.assert_allclose(out["weighted"], [1.0])
    np.testing.assert_allclose(out["pass1"], [(1 / 4 + 1 / 3) / 2])
    np.testing.assert_allclose(out["coverage"], [1.0])
    with self.assertRaisesRegex(ValueError, "groups of 3"):
      search.pool_accuracy(search.Pool(correct, answers, scores, valid), 3, ("naive",))


class ProposeScoreTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.cfg = tiny_model_config()
    self.params = tiny_params(self.cfg)
    self.prefixes = tree.Prefixes(jnp.asarray(search.encode_prompts(
        [countdown.Problem((2, 3, 6), 12), countdown.Problem((4, 5, 9, 10), 40)], 24).tokens),
                                  jnp.array([10, 13]), jnp.array([False, True]))

  def test_propose_shapes_and_determinism(self):
    sampler = search.make_sampler(self.cfg, self.params["trunk"], step_len=5, temperature=1.0)
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
    greedy = search.make_sampler(self.cfg, self.params["trunk"], step_len=5, temperature=0.0)
    g = greedy(jax.random.PRNGKey(1), self.prefixes, 2)
    np.testing.assert_array_equal(g.tokens[0, 0], g.tokens[0, 1])

  def test_score_matches_direct_forward(self):
    _, values_fn, _ = prm.prm_networks(self.cfg)
    scorer = search.PRMScorer(self.params, values_fn)
    v = scorer(self.prefixes)
    self.assertEqual(v.shape, (2,))
    direct = values_fn(self.params, self.prefixes.tokens[:1, :10], jnp.ones((1, 10)))
    np.testing.assert_allclose(v[0], direct[0, 9], rtol=1e-5)


class EndToEndTest(absltest.TestCase):

  def test_smoke_preset(self):
    d = search_configs.get_config("smoke").to_dict()
    d.update(budgets=(1, 2), strategies=("best_of_n", "beam"))
    config = search.config_from_dict(d)
    with tempfile.TemporaryDirectory() as workdir:
      results = search.train_and_evaluate(config, workdir)
      with open(os.path.join(workdir, "results.json")) as f:
        saved = json.load(f)
      names = ["best_of_n_naive", "best_of_n_majority", "best_of_n_weighted", "beam",
               "compute_optimal", "best_single"]
      for name in names:
        self.assertEqual(sorted(saved[name]), ["1", "2"], msg=name)
        self.assertTrue(all(0.0 <= v <= 1.0 for v in saved[name].values()), msg=name)
      self.assertEqual(set(results), set(names) | {"gain_over_best_of_n_weighted"})
      for name in ("report.json", "accuracy_vs_budget.png", "accuracy_vs_budget_hard.png",
                   "prm_labels.npz"):
        self.assertTrue(os.path.exists(os.path.join(workdir, name)), msg=name)
      with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
      self.assertEqual(sum(report["bin_sizes"]), config.eval_problems)
      with self.assertRaisesRegex(ValueError, "already holds checkpoints"):
        search.train_and_evaluate(config, workdir)

  def test_config_errors(self):
    with self.assertRaisesRegex(ValueError, "strategies"):
      search.Config(strategies=("mcts",))
    with self.assertRaisesRegex(ValueError, "unknown Config config key"):
      search.config_from_dict({"beam": 4})


if __name__ == "__main__":
  absltest.main()
