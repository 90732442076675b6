"""Tests for jaxlm.algos.prm: Countdown text format, Monte-Carlo labels and the PRM loss."""

import re

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.algos import prm
from jaxlm.envs import countdown
from jaxlm.models import TransformerConfig
from jaxlm.search import tree


def toy_propose(rng, prefixes, n):
  """Proposal r of every prefix appends token r + 1 and finishes the solution."""
  del rng
  p = prefixes.lengths.shape[0]
  tokens = jnp.broadcast_to(jnp.arange(1, n + 1, dtype=jnp.int32), (p, n))[..., None]
  return tree.Steps(tokens, jnp.ones((p, n), jnp.int32), jnp.ones((p, n), bool))


def toy_reward(completions):
  """1 when the last token is <= the first (the question's threshold)."""
  last = np.take_along_axis(completions.tokens, completions.lengths[..., None] - 1, -1)[..., 0]
  return (last <= completions.tokens[..., 0]).astype(np.float64)


class MonteCarloTest(parameterized.TestCase):

  def test_fractions_by_hand(self):
    # Thresholds 0, 1, 3, 5 with R = 4 completions appending 1..4: 0/4, 1/4, 3/4, 4/4 succeed.
    # The last prefix is already finished ([2], last token 2 <= 2): its own reward, 1.
    prefixes = tree.Prefixes(jnp.array([[0, 0], [1, 0], [3, 0], [5, 0], [2, 0]]),
                             jnp.ones((5,), jnp.int32),
                             jnp.array([False, False, False, False, True]))
    values, rewards = prm.monte_carlo_values(jax.random.PRNGKey(0), prefixes, toy_propose,
                                             toy_reward, num_rollouts=4, max_steps=1)
    np.testing.assert_allclose(values, [0.0, 0.25, 0.75, 1.0, 1.0])
    np.testing.assert_array_equal(rewards[1], [1, 0, 0, 0])
    self.assertEqual(rewards.shape, (5, 4))

  def test_returns_as_targets(self):
    # Any terminal reward: the mean return-to-go of the completions (here (r + 1) / 10).
    prefixes = tree.Prefixes(jnp.zeros((2, 2), jnp.int32), jnp.ones((2,), jnp.int32),
                             jnp.zeros((2,), bool))
    values, _ = prm.monte_carlo_values(
        jax.random.PRNGKey(0), prefixes, toy_propose,
        lambda c: c.tokens[..., 1].astype(np.float64) / 10, num_rollouts=3, max_steps=1)
    np.testing.assert_allclose(values, [0.2, 0.2])

  def test_errors(self):
    prefixes = tree.Prefixes(jnp.zeros((2, 2), jnp.int32), jnp.ones((2,), jnp.int32),
                             jnp.zeros((2,), bool))
    with self.assertRaisesRegex(ValueError, "num_rollouts"):
      prm.monte_carlo_values(jax.random.PRNGKey(0), prefixes, toy_propose, toy_reward,
                             num_rollouts=0, max_steps=1)
    with self.assertRaisesRegex(ValueError, "reward_fn returned shape"):
      prm.monte_carlo_values(jax.random.PRNGKey(0), prefixes, toy_propose,
                             lambda c: np.zeros(2), num_rollouts=3, max_steps=1)

  def test_label_solutions_with_references(self):
    # toy_propose writes one token and finishes, so no policy sample (or rollout) solves
    # anything: policy rows are labelled 0, the references' mid steps 0 (their rollouts stop
    # after one garbage token), and their final steps exactly 1 (a finished, verified prefix).
    problems = [countdown.Problem((2, 3, 6), 12), countdown.Problem((1, 4, 5, 6), 30)]
    tok, length = prm.tokenizer(), 48
    ids = [prm.encode_prompt(tok, p) for p in problems]
    tokens = np.zeros((2, length), np.int32)
    for q, x in enumerate(ids):
      tokens[q, :len(x)] = x
    prompts = tree.Prefixes(tokens, np.array([len(x) for x in ids], np.int32), np.zeros(2, bool))
    batch, stats = prm.label_solutions(jax.random.PRNGKey(0), prompts, problems, toy_propose,
                                       num_samples=2, num_rollouts=2, max_steps=3, chunk=4,
                                       num_references=1, write_pool=True)
    self.assertEqual(batch.tokens.shape, (6, length))  # 2 x 2 samples, then 2 references
    for row, q in ((4, 0), (5, 1)):
      n = int(batch.attention_mask[row].sum())
      text = tok.decode(batch.tokens[row, len(ids[q]):n])
      self.assertEqual(countdown.verify(problems[q], text), (True, "ok"))
      self.assertEqual(text.count("|"), len(problems[q].numbers) - 1)
      ends = np.nonzero(batch.label_mask[row])[0]
      self.assertLen(ends, len(problems[q].numbers) - 1)  # one label per step
      np.testing.assert_array_equal(batch.labels[row, ends], [0.0] * (len(ends) - 1) + [1.0])
    np.testing.assert_array_equal(batch.labels[:4], 0.0)
    self.assertEqual(stats["rows"], 6.0)
    self.assertEqual(stats["final_step_accuracy"], 0.0)  # the policy's own answers only

  def test_step_ends(self):
    tokens = np.array([2, 5, 20, 7, 20, 8, 1, 0])
    np.testing.assert_array_equal(prm.step_ends(tokens, 2, 7, (20, 1)), [2, 4, 6])
    np.testing.assert_array_equal(prm.step_ends(tokens, 3, 5, (20, 1)), [4])


class FormatTest(absltest.TestCase):

  def test_random_solutions_verify(self):
    rng = np.random.default_rng(0)
    for problem in prm.make_problems((3, 4), 6, "train", seed=0, max_number=20):
      steps = prm.random_solution(problem, rng)
      self.assertLen(steps, len(problem.numbers) - 1)
      self.assertEqual(countdown.verify(problem, "\n".join(steps)), (True, "ok"))
    with self.assertRaisesRegex(ValueError, "no solution"):
      prm.random_solution(countdown.Problem((1, 1, 1), 99), rng)

  def test_random_solution_writes_pool(self):
    # Same seed, same moves: the annotated steps are the plain steps plus the numbers left,
    # recomputed here by hand from each step.
    problem = countdown.Problem((2, 3, 6, 25), 39)
    plain = prm.random_solution(problem, np.random.default_rng(3))
    annotated = prm.random_solution(problem, np.random.default_rng(3), write_pool=True)
    pool = list(problem.numbers)
    for step, line in zip(plain, annotated, strict=True):
      lhs, c = step.split("=")
      a, b = (int(x) for x in lhs.replace("*", "+").replace("-", "+").replace("/", "+").split("+"))
      pool.remove(a)
      pool.remove(b)
      pool.append(int(c))
      self.assertEqual(line, f"{step}|{' '.join(map(str, sorted(pool)))}")
    self.assertEqual(annotated[-1].split("|")[1], "39")
    self.assertEqual(countdown.verify(problem, "\n".join(annotated)), (True, "ok"))
    batch = prm.sft_batch([problem], max_len=64, seed=0, write_pool=True)
    tok = prm.tokenizer()
    n = int(batch.attention_mask.sum())
    text = tok.decode(batch.tokens[0, len(prm.encode_prompt(tok, problem)):n])
    self.assertEqual(text.count("|"), 3)
    self.assertEqual(countdown.verify(problem, text), (True, "ok"))

  def test_near_miss_is_an_honest_closest_attempt(self):
    rng = np.random.default_rng(1)
    misses = 0
    for problem in prm.make_problems((3, 4), 40, "train", seed=0, max_number=12):
      steps = prm.random_solution(problem, rng, write_pool=True, near_miss=True)
      self.assertLen(steps, len(problem.numbers) - 1)
      solved, reason = countdown.verify(problem, "\n".join(steps))
      self.assertTrue(solved or reason.startswith("final number"), reason)  # arithmetic holds
      misses += not solved
      # The last step's result is the reachable value closest to the target (by hand: all ops).
      last, pool = steps[-1].split("|")
      a, b = sorted(int(x) for x in re.split(r"[-+*/=]", last)[:2])
      results = [countdown.apply_op(a, b, op) for op in countdown.OPS]
      best = min(abs(r - problem.target) for r in results if r is not None)
      self.assertEqual(abs(int(pool) - problem.target), best)
    self.assertGreater(misses, 20)  # random moves mostly miss

  def test_sft_batch_near_miss_fraction(self):
    problems = prm.make_problems((3,), 200, "train", seed=0, max_number=12)
    tok = prm.tokenizer()

    def solved(batch):
      out = []
      for b, p in enumerate(problems):
        n, start = int(batch.attention_mask[b].sum()), len(prm.encode_prompt(tok, p))
        out.append(countdown.verify(p, tok.decode(batch.tokens[b, start:n]))[0])
      return np.array(out)

    self.assertTrue(solved(prm.sft_batch(problems, 48, seed=0, write_pool=True)).all())
    rate = solved(prm.sft_batch(problems, 48, seed=0, write_pool=True,
                                near_miss_fraction=0.5)).mean()
    self.assertBetween(rate, 0.4, 0.75)  # ~half are near misses, a few of which still hit
    with self.assertRaisesRegex(ValueError, "near_miss_fraction"):
      prm.sft_batch(problems, 48, seed=0, near_miss_fraction=1.0)

  def test_sft_batch(self):
    problem = countdown.Problem((2, 3, 6, 25), 39)
    batch = prm.sft_batch([problem], max_len=40, seed=0)
    tok = prm.tokenizer()
    prompt = prm.encode_prompt(tok, problem)
    self.assertEqual(tok.decode(prompt), "39|2 3 6 25\n")
    n = int(batch.attention_mask.sum())
    self.assertEqual(batch.tokens[0, n - 1], tok.eos_id)
    np.testing.assert_array_equal(batch.action_mask[0, :len(prompt)], 0)
    np.testing.assert_array_equal(batch.action_mask[0, len(prompt):n], 1)
    text = tok.decode(batch.tokens[0, len(prompt):n])
    self.assertEqual(countdown.verify(problem, text), (True, "ok"))
    with self.assertRaisesRegex(ValueError, "max_len=10"):
      prm.sft_batch([problem], max_len=10, seed=0)


  def test_trace_completion(self):
    problem = countdown.Problem((2, 3, 6), 12)
    text = prm.trace_completion(problem)
    think, answer = text.split(prm.THINK_CLOSE)
    self.assertTrue(answer.startswith(prm.ANSWER_PREFIX))
    self.assertNotIn(countdown.ANSWER_MARKER, think)
    self.assertTrue(think.startswith("Goal 12 from [2 3 6]\n#0 [2 3 6]"))
    self.assertEqual(countdown.verify(problem, text), (True, "ok"))
    self.assertEqual(answer[len(prm.ANSWER_PREFIX):].splitlines(),
                     list(countdown.search_trace(problem).solution))
    self.assertIsNone(prm.trace_completion(countdown.Problem((1, 1, 1), 99)))

  def test_trace_sft_batch_drops_long_rows(self):
    tok = prm.trace_tokenizer()
    short, long = countdown.Problem((2, 3, 6), 12), countdown.Problem((7, 9, 11, 12), 48)
    lengths = [len(prm.encode_prompt(tok, p)) + 1 + len(tok.encode(prm.trace_completion(p))) + 1
               for p in (short, long)]
    self.assertLess(lengths[0], lengths[1])
    batch = prm.trace_sft_batch([short, long], max_len=lengths[0])
    self.assertEqual(batch.tokens.shape, (1, lengths[0]))
    prompt = prm.encode_prompt(tok, short) + tok.encode(prm.THINK_OPEN)
    np.testing.assert_array_equal(batch.tokens[0, :len(prompt)], prompt)
    np.testing.assert_array_equal(batch.action_mask[0, :len(prompt)], 0)
    np.testing.assert_array_equal(batch.action_mask[0, len(prompt):], 1)
    self.assertEqual(batch.tokens[0, -1], tok.eos_id)
    self.assertEqual(tok.decode(batch.tokens[0, len(prompt):]), prm.trace_completion(short))
    self.assertEqual(prm.trace_sft_batch([short, long], max_len=lengths[1]).tokens.shape[0], 2)
    with self.assertRaisesRegex(ValueError, "fits max_len=20"):
      prm.trace_sft_batch([short], max_len=20)


class PRMTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_loss_by_hand(self):
    # sigmoid(0) = 0.5 with y = 0.5: log 2; sigmoid(log 3) = 0.75 with y = 0.75:
    # -(0.75 log 0.75 + 0.25 log 0.25) = 0.562335. The masked position does not count.
    logits = jnp.array([[0.0, np.log(3.0), 5.0]])
    batch = prm.PRMBatch(jnp.zeros((1, 3), jnp.int32), jnp.ones((1, 3)),
                         jnp.array([[1.0, 1.0, 0.0]]), jnp.array([[0.5, 0.75, 0.0]]))
    loss, metrics = self.variant(prm.prm_loss)(logits, batch)
    np.testing.assert_allclose(loss, (np.log(2) + 0.562335) / 2, rtol=1e-5)
    np.testing.assert_allclose(metrics["prm_abs_err"], 0.0, atol=1e-6)

  def test_estimate_labels_by_hand(self):
    # Soft labels 0, 1/8, 1 at step ends; HE marks any success, masked positions stay 0.
    batch = prm.PRMBatch(np.zeros((1, 4), np.int32), np.ones((1, 4), np.float32),
                         np.array([[1, 1, 1, 0]], np.float32),
                         np.array([[0.0, 0.125, 1.0, 0.0]], np.float32))
    self.assertIs(prm.estimate_labels(batch, "soft"), batch)
    hard = prm.estimate_labels(batch, "hard")
    np.testing.assert_array_equal(hard.labels, [[0.0, 1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(hard.label_mask, batch.label_mask)
    with self.assertRaisesRegex(ValueError, "label kind"):
      prm.estimate_labels(batch, "max")

  def test_networks_copy_the_policy_trunk(self):
    cfg = TransformerConfig(vocab_size=prm.tokenizer().vocab_size, d_model=16, n_layers=1,
                            n_heads=2, d_ff=32, max_len=12, pos="rope")
    init_fn, values_fn, _ = prm.prm_networks(cfg)
    fresh = jax.tree.map(lambda x: x, init_fn(jax.random.PRNGKey(0)))
    copied = init_fn(jax.random.PRNGKey(1), fresh["trunk"])
    chex.assert_trees_all_equal(fresh["trunk"], copied["trunk"])
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    v = values_fn(nn.meta.unbox(copied), jnp.ones((2, 12), jnp.int32), jnp.ones((2, 12)))
    self.assertEqual(v.shape, (2, 12))
    self.assertTrue(bool(jnp.all((v > 0) & (v < 1))))


if __name__ == "__main__":
  absltest.main()
