"""Tests for jaxlm.algos.apr: SFT rows, evaluation under context caps, RL rows and weights."""

import dataclasses
import functools
import json
import os
import tempfile
from unittest import mock

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import apr as apr_configs
from jaxlm import config as config_lib
from jaxlm import testing
from jaxlm import train as train_lib
from jaxlm.algos import apr
from jaxlm.algos import pg_threads
from jaxlm.envs import bandit
from jaxlm.envs import countdown as cd
from jaxlm.envs import countdown_search as cs
from jaxlm.envs import countdown_traces as ct
from jaxlm.losses import pg as pg_losses
from jaxlm.models import transformer
from jaxlm.rl.returns import decision_view
from jaxlm.search import decoding
from jaxlm.search import threads

TOK = apr.tokenizer()
FIXTURE = cd.Problem((1, 1, 1, 4), 12)  # countdown_traces_test's fixture
PROBLEMS = [p for k in (3, 4) for p in cd.generate(cd.CountdownConfig(num_numbers=k), 11, 6)]
SMALL = apr.Config(max_children=2, child_expansions=2)
Script = functools.partial(testing.ScriptedDecoder, tokenizer=TOK)
BIG = threads.Budget(max_rounds=5, max_total_tokens=100_000, max_thread_tokens=8192)


def trained_text(ids, trained):
  return TOK.decode([i for i, t in zip(ids, trained) if t and i != TOK.eos_id])


class RowsTest(absltest.TestCase):

  def test_apr_rows_train_on_what_the_model_writes(self):
    trace = ct.apr_trace(FIXTURE, 2, 2)
    parent, children = ct.apr_texts(trace)
    rows = apr.apr_rows(FIXTURE, SMALL)
    self.assertLen(rows, 1 + len(children))
    for (ids, trained), text in zip(rows, (parent, *children)):
      self.assertEqual(ids, [TOK.bos_id] + TOK.encode(text) + [TOK.eos_id])
      self.assertTrue(trained[-1])  # <eos> is trained
    # The parent: neither its prompt line nor the join block the orchestrator writes.
    prompt = ct.thread_prompt(FIXTURE.target, FIXTURE.numbers)
    before = ct.parent_before_spawn(trace)
    join = ct.join_context(before, trace.outcomes)[len(before):]
    self.assertIn(join, parent)
    expected = parent[len(prompt):].replace(join, "")
    self.assertEqual(trained_text(*rows[0]), expected)
    # A child: everything after its header line.
    self.assertEqual(trained_text(*rows[1]), children[0].split("\n", 1)[1])
    # parent_repeats copies the parent row only.
    repeated = apr.apr_rows(FIXTURE, dataclasses.replace(SMALL, parent_repeats=3))
    self.assertEqual(repeated, rows[:1] * 3 + rows[1:])
    with self.assertRaisesRegex(ValueError, "parent_repeats=0"):
      apr.Config(parent_repeats=0)

  def test_pair_results_rows(self):
    # A 3-number problem: the root's edges are two-number pools, so the parent changes too.
    problem = cd.Problem((2, 3, 4), 24)
    trace = ct.apr_trace(problem, 2, 2)
    parent, children = ct.apr_texts(trace, "results")
    self.assertIn("  3*2=6 -> [4 6] = 10 2 24 h=0 #", parent)
    rows = apr.apr_rows(problem, dataclasses.replace(SMALL, grammar="results"))
    for (ids, _), text in zip(rows, (parent, *children)):
      self.assertEqual(ids, [TOK.bos_id] + TOK.encode(text) + [TOK.eos_id])
    before = ct.parent_before_spawn(trace, "results")
    join = ct.join_context(before, trace.outcomes)[len(before):]
    self.assertEqual(trained_text(*rows[0]),
                     parent[len(ct.thread_prompt(24, (2, 3, 4))):].replace(join, ""))
    [(ids, _)] = apr.sos_rows(problem, apr.Config(grammar="results"))
    search = cs.best_first(24, (2, 3, 4), 100)
    self.assertEqual(TOK.decode(ids[1:-1]), cs.format_search(search, "results"))
    config = apr.Config(grammar="results", sos_expansions=100, max_children=2,
                        child_expansions=2)
    batch = apr.sft_batch("apr", [problem], config)
    np.testing.assert_array_equal(batch.tokens[0, :len(rows[0][0])], rows[0][0])

  def test_decision_weight_rows(self):
    config = dataclasses.replace(SMALL, grammar="marks", pair_goals=True, decision_weight=8.0)
    trace = ct.apr_trace(FIXTURE, 2, 2, pair_goals=True)
    parent, children = ct.apr_texts(trace, "marks")
    self.assertIn("  2+1=3 -> [3 4] = 7 1 12. goal", children[1])
    rows = apr.apr_rows(FIXTURE, config)
    for (ids, weights), text in zip(rows, (parent, *children)):
      self.assertEqual(ids, [TOK.bos_id] + TOK.encode(text) + [TOK.eos_id])
      heavy = [i - 1 for i, w in enumerate(weights) if w == 8.0]
      self.assertEqual(heavy, ct.decision_positions(text))
      self.assertEqual(set(weights) - {0.0, 1.0, 8.0}, set())
    # The parent lists no two-number pool: its spawned ids (#4, #1) and its answer's (#1).
    self.assertEqual([parent[i - 1] for i, w in enumerate(rows[0][1]) if w == 8.0],
                     ["4", "1", "1"])
    self.assertLen(ct.decision_positions(children[1]), 4)  # 3 results and the label
    batch = apr.sft_batch("apr", [FIXTURE], config)
    np.testing.assert_array_equal(batch.loss_mask[2, :len(rows[2][1])], rows[2][1])
    np.testing.assert_array_equal(batch.action_mask, batch.loss_mask > 0)
    with self.assertRaisesRegex(ValueError, "decision_weight=0"):
      apr.Config(decision_weight=0)
    with self.assertRaisesRegex(ValueError, "grammar must be one of"):
      apr.Config(grammar="dots")

  def test_sos_row_and_cut(self):
    [(ids, trained)] = apr.sos_rows(FIXTURE, apr.Config())
    text = cs.format_search(cs.best_first(FIXTURE.target, FIXTURE.numbers, 100))
    self.assertEqual(TOK.decode(ids[1:-1]), text)
    batch = pg_threads.row_batch([(ids, trained)], 40, TOK.pad_id, weights=[0.5])
    self.assertEqual(batch.tokens.shape, (1, 40))
    np.testing.assert_array_equal(batch.tokens[0], ids[:40])  # cut: no <eos>
    np.testing.assert_array_equal(batch.loss_mask[0], 0.5 * np.asarray(trained[:40]))

  def test_unknown_format(self):
    with self.assertRaisesRegex(ValueError, "format must be one of"):
      apr.sft_batch("serial", PROBLEMS[:1], apr.Config())
    with self.assertRaisesRegex(ValueError, "child_sft_steps=-1"):
      apr.Config(child_sft_steps=-1)

  def test_child_rows_are_the_apr_rows_without_parents(self):
    config = apr.Config(parent_repeats=3)
    rows = apr.apr_rows(FIXTURE, config)
    child_rows = apr.apr_rows(FIXTURE, config, parent=False)
    self.assertEqual(child_rows, rows[3:])
    _, children = ct.apr_texts(ct.apr_trace(FIXTURE, config.max_children,
                                            config.child_expansions))
    self.assertEqual([TOK.decode(ids[1:-1]) for ids, _ in child_rows], list(children))
    batch = apr.sft_batch("child", PROBLEMS[:2], config)
    self.assertEqual(batch.tokens.shape[0],
                     sum(len(apr.apr_rows(p, config, parent=False)) for p in PROBLEMS[:2]))


class EvaluateTest(absltest.TestCase):

  def test_replayed_apr_traces_score_the_oracle(self):
    traces = [ct.apr_trace(p, 3, 5) for p in PROBLEMS]
    texts = [t for tr in traces for t in (lambda x: (x[0], *x[1]))(ct.apr_texts(tr))]
    row = apr.evaluate(Script(texts), PROBLEMS, BIG)
    self.assertEqual(row["solved"], [float(t.solution is not None) for t in traces])
    self.assertAlmostEqual(row["accuracy"], np.mean([t.solution is not None for t in traces]))
    self.assertAlmostEqual(row["mean_children"], np.mean([len(t.spawned) for t in traces]))
    self.assertEqual(row["stops"], {"eos": len(PROBLEMS)})

  def test_child_accuracy_of_scripted_children(self):
    config = apr.Config(max_children=3, child_expansions=5, context=8192, caps=(8192,))
    trace_list = [ct.apr_trace(p, 3, 5) for p in PROBLEMS]
    children = [c for tr in trace_list for c in tr.children]
    solvable = np.array([cd.solve(cd.Problem(c.start, c.target)) is not None for c in children])
    self.assertTrue(solvable.any() and not solvable.all())
    texts = sorted({t for tr in trace_list for t in ct.apr_texts(tr)[1]})  # replayed searches
    row = apr.child_accuracy(Script(texts), PROBLEMS, config)
    self.assertEqual(row["children"], len(children))
    self.assertAlmostEqual(row["solvable"], solvable.mean())
    self.assertAlmostEqual(row["solved"], np.mean([c.solution is not None
                                                   for c, s in zip(children, solvable) if s]))
    self.assertEqual(row["false_goal"], 0.0)
    wrong = lambda prompts, *_: [TOK.encode("Answer:\n1+1=2") + [TOK.eos_id] for _ in prompts]
    row = apr.child_accuracy(wrong, PROBLEMS, config)
    self.assertEqual((row["solved"], row["false_goal"]), (0.0, 1.0))
    silent = lambda prompts, *_: [[TOK.eos_id] for _ in prompts]
    self.assertEqual(apr.child_accuracy(silent, PROBLEMS, config)["false_goal"], 0.0)

  def test_headlines_pair_the_models_per_problem(self):
    config = apr.Config(context=768, max_rounds=5)
    row = lambda solved, cap=768: {"cap": cap, "total": 5 * cap, "accuracy": np.mean(solved),
                                   "solved": solved}
    curves = {"sos": [row([0., 0., 0., 0.], cap=512), row([0., 0., 1., 0.])],
              "apr": [row([1., 0., 1., 1.])], "apr_rl": [row([1., 1., 1., 1.])]}
    results = apr._headlines(curves, config)  # pylint: disable=protected-access
    self.assertEqual(results["sos"], {"cap": 768, "accuracy": 0.25})
    # APR - SoS+ per problem: [1, 0, 0, 1]: mean 0.5, sd sqrt(1/3), t(0.975, 3) = 3.182446.
    self.assertAlmostEqual(results["apr"]["gain_over_sos"], 0.5)
    self.assertAlmostEqual(results["apr"]["gain_over_sos_ci95"],
                           3.182446 * np.sqrt(1 / 3) / 2, places=5)
    self.assertAlmostEqual(results["apr_rl"]["gain_over_apr"], 0.25)  # [0, 1, 0, 0]
    self.assertAlmostEqual(results["apr_rl"]["gain_over_apr_ci95"], 3.182446 * 0.5 / 2,
                           places=5)
    self.assertIn("gain_over_apr +0.250 +- 0.796", apr.summary(
        {"apr_rl": dict(results["apr_rl"], mean_total_tokens=1, mean_sequential_tokens=1,
                        mean_rounds=1, mean_children=0)}))

  def test_sos_at_a_context_cap(self):
    searches = [cs.best_first(p.target, p.numbers, 30) for p in PROBLEMS]
    texts = [cs.format_search(s) for s in searches]
    lengths = np.array([len(t) + 2 for t in texts])  # bos + text + eos
    for cap in (int(np.min(lengths)), int(np.median(lengths)), int(np.max(lengths))):
      budget = threads.Budget(max_rounds=5, max_total_tokens=100_000, max_thread_tokens=cap)
      row = apr.evaluate(Script(texts), PROBLEMS, budget)
      fits = lengths <= cap
      expected = np.mean([f and s.solution is not None for f, s in zip(fits, searches)])
      self.assertAlmostEqual(row["accuracy"], expected)
      self.assertEqual(row["stops"].get("context", 0), int(np.sum(~fits)))
      self.assertAlmostEqual(row["mean_rounds"], 1.0)
      self.assertLessEqual(row["mean_longest_thread"], cap)

  def test_chunked_decoding_evaluates_as_one_call(self):
    c = apr_configs.get_config("smoke")
    config = config_lib.from_dict(apr.Config, c.to_dict())
    model_cfg = apr._model_config(config)  # pylint: disable=protected-access
    model, init = apr.pg.networks(dataclasses.replace(config.rl, model=model_cfg))[:2]
    params = init(jax.random.key(0))["policy"]
    budget = threads.Budget(config.max_rounds, 1000, config.context)
    calls, original = [], decoding.make_decode
    def make_decode(*args, **kwargs):  # records each decode call's chunk
      decode = original(*args, **kwargs)
      return lambda *a: calls.append(kwargs["chunk"]) or decode(*a)
    rows = []
    with mock.patch.object(apr.decoding, "make_decode", make_decode):
      for chunk in (None, 7):
        rows.append(apr.evaluate(apr.model_decode(model, params, dataclasses.replace(
            config, decode_chunk=chunk)), PROBLEMS, budget))
    self.assertEqual(rows[0], rows[1])
    self.assertEqual(set(calls), {None, 7})
    self.assertGreater(rows[0]["mean_longest_thread"], 7 + 20)  # threads span several chunks
    with self.assertRaisesRegex(ValueError, "decode_chunk=0 must be >= 1"):
      apr.Config(decode_chunk=0)


class RolloutRowsTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    problems = [FIXTURE, PROBLEMS[6], FIXTURE, PROBLEMS[6]]  # two prompts, G = 2
    texts = []
    for p, max_children in zip(problems[:2], (2, 1)):  # 3 and 2 threads
      parent, children = ct.apr_texts(ct.apr_trace(p, max_children, 2))
      texts += [parent, *children]
    prompts = [ct.thread_prompt(p.target, p.numbers) for p in problems]
    self.rollouts = threads.run(Script(texts), TOK, ct.APR_THREADS, prompts, BIG,
                                jax.random.key(0))
    self.adv = np.array([0.5, -0.5, 1.0, -1.0], np.float32)
    self.batch, self.adv_B, self.zv_B = pg_threads.rollout_rows(
        self.rollouts, self.adv, np.array([False, True, False, True]), 4096, TOK.pad_id, multiple=4)

  def test_rows_and_padding(self):
    n = sum(len(r.thread_ids) for r in self.rollouts)
    rows = self.batch.tokens.shape[0]
    self.assertEqual((n, rows), (10, 12))  # 3/4 of 16, a multiple of 4
    for multiple, want in ((1, 12), (5, 15), (16, 16)):
      batch, _, _ = pg_threads.rollout_rows(self.rollouts, self.adv, np.zeros(4, bool), 4096,
                                            TOK.pad_id, multiple=multiple)
      self.assertEqual(batch.tokens.shape[0], want)
    longest = max(len(ids) for r in self.rollouts for ids in r.thread_ids)
    self.assertEqual(self.batch.tokens.shape[1], decoding.bucket(longest, fine=True))
    owner = np.repeat(np.arange(4), [len(r.thread_ids) for r in self.rollouts])
    np.testing.assert_array_equal(self.adv_B[:n], self.adv[owner])
    np.testing.assert_array_equal(self.adv_B[n:], 0.0)
    self.assertTrue(np.all(self.zv_B[n:]))
    self.assertEqual(float(np.sum(self.batch.attention_mask[n:])), 0.0)
    row = 0
    for r in self.rollouts:
      for ids, decoded in zip(r.thread_ids, r.thread_decoded):
        np.testing.assert_array_equal(self.batch.tokens[row, :len(ids)], ids)
        np.testing.assert_array_equal(self.batch.action_mask[row, :len(ids)], decoded)
        row += 1

  def test_sampler_logp_rows(self):
    self.assertIsNone(pg_threads.sampler_logp_rows(self.rollouts, self.batch.tokens.shape))
    without = [dataclasses.replace(r, thread_logp=()) for r in self.rollouts]  # none kept
    self.assertIsNone(pg_threads.sampler_logp_rows(without, self.batch.tokens.shape))
    # Each decoded id's log-prob = -(its position) / 1000; the rows hold it one position
    # earlier (decision frame), cut at the row length.
    given = [dataclasses.replace(r, thread_logp=tuple(
        tuple(-i / 1000 if d else 0.0 for i, d in enumerate(flags)) for flags in r.thread_decoded))
             for r in self.rollouts]
    for length in (self.batch.tokens.shape[1], 40):
      got = pg_threads.sampler_logp_rows(given, (12, length))
      row = 0
      for r in given:
        for logp in r.thread_logp:
          want = np.zeros(length, np.float32)
          n = min(len(logp), length + 1)
          want[:n - 1] = logp[1:n]
          np.testing.assert_array_equal(got[row], want)
          self.assertLess(got[row].min(), 0.0)
          row += 1
      np.testing.assert_array_equal(got[row:], 0.0)

  def test_each_rollout_weighs_one(self):
    owner = np.repeat(np.arange(4), [len(r.thread_ids) for r in self.rollouts])
    weights = np.asarray(self.batch.loss_mask)
    per_rollout = [weights[:len(owner)][owner == i].sum() for i in range(4)]
    np.testing.assert_allclose(per_rollout, 1.0, rtol=1e-6)
    # A per-token loss equal to the rollout's id: the token-mean aggregation with these weights
    # is the mean over rollouts (1.5), whatever the number of threads each spawned.
    trains = decision_view(self.batch).trains
    value = np.zeros(trains.shape, np.float32)
    value[:len(owner)] = owner[:, None]
    norm = pg_losses.aggregation_normalizer(trains, "token_mean")
    self.assertAlmostEqual(float(norm), 4.0, places=5)
    loss = pg_losses.aggregate(jnp.asarray(value), trains, "token_mean", norm)
    self.assertAlmostEqual(float(loss), 1.5, places=5)
    self.assertEqual([len(r.thread_ids) for r in self.rollouts], [3, 2, 3, 2])
    # Without per-rollout weights every decoded token weighs 1 (the aggregation alone decides).
    batch, _, _ = pg_threads.rollout_rows(self.rollouts, self.adv, np.zeros(4, bool), 4096,
                                          TOK.pad_id, per_rollout=False)
    np.testing.assert_array_equal(batch.loss_mask, batch.action_mask)

  def test_mask_truncated_drops_every_thread_of_a_cut_rollout(self):
    cut = [dataclasses.replace(r, stop="tokens") if i == 1 else r
           for i, r in enumerate(self.rollouts)]
    batches = []
    for mask in (False, True):
      config = apr.pg.Config(model=testing.tiny_model(vocab_size=TOK.vocab_size, max_len=4096),
                             train=testing.tiny_train(batch_size=4), group_size=2,
                             mask_truncated=mask)
      model, init, forward, policy_logits = apr.pg.networks(config)
      task = apr.thread_task([FIXTURE, PROBLEMS[6]], [FIXTURE])
      rollouts = pg_threads.ThreadRollouts(config, task, model, forward, policy_logits,
                                           run=lambda decode, idx, key: cut, tok=TOK)
      state = train_lib.TrainState(step=0, params=init(jax.random.key(0)), opt_state=None,
                                   rng=None, extra=None)
      batches.append(rollouts(state))
    plain, masked = (np.asarray(b.rl.loss_mask) for b in batches)
    owner = np.repeat(np.arange(4), [len(r.thread_ids) for r in cut])
    rows = np.zeros(len(plain), bool)
    rows[:len(owner)] = owner == 1
    self.assertGreater(plain[rows].sum(), 0.0)
    np.testing.assert_array_equal(masked[rows], 0.0)
    np.testing.assert_array_equal(masked[~rows], plain[~rows])
    np.testing.assert_array_equal(batches[0].advantages, batches[1].advantages)


  def test_oversample_keeps_the_groups_whose_rewards_vary(self):
    problems = [FIXTURE, PROBLEMS[6]]
    right = {i: cs.format_search(cs.best_first(p.target, p.numbers, 100))
             for i, p in enumerate(problems)}
    self.assertTrue(all(cd.verify(p, right[i])[0] for i, p in enumerate(problems)))
    drawn = []

    def run(decode, indices, key):  # rollout j of group k solves iff k is odd and j is even
      del decode, key
      drawn.append(list(indices))
      out = []
      for j, i in enumerate(indices):
        prompt = ct.thread_prompt(problems[i].target, problems[i].numbers)
        text = right[i] if (j // 2) % 2 and j % 2 == 0 else "Answer:\n1+1=2"
        ids = [TOK.bos_id] + TOK.encode(prompt + text) + [TOK.eos_id]
        decoded = [False] * (1 + len(TOK.encode(prompt))) + [True] * (len(ids) - 1 -
                                                                      len(TOK.encode(prompt)))
        out.append(threads.Rollout(prompt + text, (), sum(decoded), len(ids), 1, sum(decoded),
                                   "eos", (tuple(ids),), (tuple(decoded),)))
      return out

    batches = []
    for oversample in (1, 2):
      config = apr.pg.Config(model=testing.tiny_model(vocab_size=TOK.vocab_size, max_len=4096),
                             train=testing.tiny_train(batch_size=4), group_size=2,
                             oversample=oversample)
      model, init, forward, policy_logits = apr.pg.networks(config)
      rollouts = pg_threads.ThreadRollouts(config, apr.thread_task(problems, problems[:1]),
                                           model, forward, policy_logits, run=run, tok=TOK)
      state = train_lib.TrainState(step=0, params=init(jax.random.key(0)), opt_state=None,
                                   rng=None, extra=None)
      batches.append(rollouts(state))
    # 2 prompts x G=2 drawn once, then 4 prompts (the same first two: one seed) for oversample 2.
    self.assertEqual([len(d) for d in drawn], [4, 8])
    self.assertEqual(drawn[1][:4], drawn[0])
    self.assertEqual(drawn[1][::2], drawn[1][1::2])  # a group shares its prompt
    plain, kept = batches
    # Without oversampling groups 0 (constant 0) and 1 (varies) are trained; with it, groups 1
    # and 3, the two that vary, and no zero-variance group is left.
    np.testing.assert_allclose(np.asarray(plain.zero_var)[0], 0.5)
    np.testing.assert_allclose(np.asarray(kept.zero_var)[0], 0.0)
    expected = [g * 2 + j for g in (1, 3) for j in range(2)]
    for row, j in enumerate(expected):
      ids = run(None, drawn[1], None)[j].thread_ids[0]
      np.testing.assert_array_equal(np.asarray(kept.rl.tokens)[row, :len(ids)], ids)
    adv = np.asarray(kept.advantages)[:4]  # +, -, +, - per token row; signs by hand
    self.assertTrue(np.all(adv[[0, 2]].max(-1) > 0) and np.all(adv[[1, 3]].min(-1) < 0))


class PaperPresetTest(absltest.TestCase):

  def test_paper_preset_builds_the_papers_228m_model(self):
    config = config_lib.from_dict(apr.Config, apr_configs.get_config("paper").to_dict())
    model = dataclasses.replace(config.countdown.model_config(), max_len=config.context,
                                vocab_size=apr.tokenizer().vocab_size)
    self.assertEqual(model, transformer.llama_config(
        d_model=1024, n_layers=18, n_heads=16, d_ff=2752, vocab_size=model.vocab_size,
        max_len=4096))
    # By hand: 18 x (4 x 1024^2 attention + 3 x 1024 x 2752 SwiGLU + 2 x 1024 norms) + 1024;
    # the paper: 228M non-embedding parameters.
    non_embedding = model.num_params() - 2 * model.vocab_size * model.d_model
    self.assertEqual(non_embedding, 18 * (4 * 1024**2 + 3 * 1024 * 2752 + 2 * 1024) + 1024)
    self.assertEqual(round(non_embedding / 1e6), 228)
    self.assertEqual(config.rl.train.batch_size // config.rl.group_size, 64)  # prompts


class SmokeTest(absltest.TestCase):

  def test_smoke_writes_every_model(self):
    c = apr_configs.get_config("smoke")
    c.update(caps=(96,), total_budgets=())
    config = config_lib.from_dict(apr.Config, c.to_dict())
    with tempfile.TemporaryDirectory() as d:
      results = apr.train_and_evaluate(config, d)
      with open(os.path.join(d, "results.json")) as f:
        self.assertEqual(json.load(f), results)
      self.assertEqual(list(results), ["sos", "apr", "apr_rl"])
      self.assertEqual(set(results["apr_rl"]["child"]),
                       {"children", "solvable", "solved", "false_goal"})
      for name, base in (("apr", "sos"), ("apr_rl", "apr")):  # paired on the same problems
        self.assertAlmostEqual(results[name][f"gain_over_{base}"],
                               results[name]["accuracy"] - results[base]["accuracy"])
        self.assertIn(f"gain_over_{base}_ci95", results[name])
      with open(os.path.join(d, "curves.json")) as f:
        curves = json.load(f)
      self.assertEqual([len(r["solved"]) for r in curves["sos"]], [config.eval_problems])
      for row in results.values():
        self.assertNotIn("solved", row)
        self.assertEqual(row["cap"], 96)
        self.assertBetween(row["accuracy"], 0.0, 1.0)
        self.assertLessEqual(row["mean_longest_thread"], 96)
      self.assertTrue(os.path.exists(os.path.join(d, "accuracy_vs_tokens.png")))
      # trace_init="policy", then child_sft_steps: the direct-answer policy, then the child rows.
      self.assertTrue(os.path.isdir(os.path.join(d, "policy")))
      with open(os.path.join(d, "child", "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
      self.assertEqual(steps[-1], config.child_sft_steps)
      with open(os.path.join(d, "apr_rl", "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
      self.assertIn("eval/accuracy", rows[0])  # the RL run's own step-0 evaluation
      self.assertEqual(rows[-1]["step"], config.rl.train.num_steps)
      evals = [r for r in rows if "eval/accuracy" in r]
      self.assertEqual(rows[0]["eval/gain"], 0.0)  # paired with the start: itself
      self.assertAlmostEqual(evals[-1]["eval/gain"],
                             evals[-1]["eval/accuracy"] - evals[0]["eval/accuracy"], places=6)
      self.assertIn("eval/gain_ci95", evals[-1])
      # The trainer's log-probs of the sampled threads are the sampler's (same model, the
      # rows' contexts are the decode contexts): measured, and ~0.
      gaps = [r["sampler_gap"] for r in rows if "sampler_gap" in r]
      self.assertNotEmpty(gaps)
      self.assertBetween(max(gaps), 0.0, 1e-3)
    with self.assertRaisesRegex(ValueError, "aggregation must be 'token_mean'"):
      apr.Config(rl=apr.pg.Config(aggregation="seq_mean_token_mean"))

  def test_thread_rollouts_draw_prompts_in_epochs(self):
    # ThreadRollouts draws its prompts as pg's rollouts do: "epochs" visits each of the 5
    # training prompts once per pass (P = 2 a step, 3 steps = 6 draws over passes 0 and 1).
    config = apr.pg.Config(prompt_order="epochs", group_size=4,
                           train=testing.tiny_train(batch_size=8))
    task = bandit.task(num_prompts=5)
    rollouts = pg_threads.ThreadRollouts(config, task, None, None, None, run=None, tok=TOK)
    drawn = []
    for i in range(1, 6):
      rollouts.index = i
      drawn.extend(rollouts._prompts(None))
    self.assertEqual(sorted(drawn[:5]), [0, 1, 2, 3, 4])
    self.assertEqual(sorted(drawn[5:10]), [0, 1, 2, 3, 4])


if __name__ == "__main__":
  absltest.main()
