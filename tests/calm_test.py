"""CALM: the flight-booking task, relabeling, the factored aux loss and the smoke entry point."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import config as config_lib
from jaxlm.algos import calm
from jaxlm.envs import dialogue as dlg
from jaxlm.losses import calm as calm_loss
from experiments.configs import calm as calm_configs

F = dlg.Flight
TABLE = (F("a", "direct", "am"), F("b", "stop", "pm"), F("a", "stop", "am"),
         F("c", "direct", "pm"))


class DialogueTaskTest(absltest.TestCase):

  def test_true_action_rule_on_hand_built_tables(self):
    cases = [  # (goal, valid actions: every matching flight, true action: the first)
        (dlg.Constraints(), (0, 1, 2, 3), 0),
        (dlg.Constraints(airline="a"), (0, 2), 0),
        (dlg.Constraints(time="pm"), (1, 3), 1),
        (dlg.Constraints(airline="a", stops="stop"), (2,), 2),
        (dlg.Constraints(stops="direct", time="pm"), (3,), 3),
        (dlg.Constraints(airline="b", stops="stop", time="pm"), (1,), 1),
        (dlg.Constraints(airline="b", stops="direct"), (4,), 4),        # no flight
        (dlg.Constraints(airline="c", time="am"), (4,), 4),
        (dlg.Constraints(airline="a", stops="direct", time="pm"), (4,), 4),
    ]
    for goal, valid, true in cases:
      self.assertEqual(dlg.valid_actions(TABLE, goal), valid, msg=goal)
      self.assertEqual(dlg.true_action(TABLE, goal), true, msg=goal)
    self.assertTrue(dlg.is_success(TABLE, dlg.Constraints(airline="a"), 2))
    self.assertFalse(dlg.is_success(TABLE, dlg.Constraints(airline="a"), 1))
    self.assertFalse(dlg.is_success(TABLE, dlg.Constraints(airline="a"), None))

  def test_logger_noise_share(self):
    task = dlg.DialogueConfig(noise=0.3)
    logged = dlg.log_dialogues(2000, seed=5, config=task)
    wrong = np.mean([not dlg.is_success(d.table, d.constraints, d.action) for d in logged])
    self.assertBetween(wrong, 0.3 - 0.035, 0.3 + 0.035)  # ~3.4 binomial standard errors
    self.assertEqual(logged[:100], dlg.log_dialogues(100, seed=5, config=task))
    for noise, share in ((0.0, 0.0), (1.0, 1.0)):
      logged = dlg.log_dialogues(300, seed=1, config=dlg.DialogueConfig(noise=noise))
      self.assertEqual(np.mean([not dlg.is_success(d.table, d.constraints, d.action)
                                for d in logged]), share)

  def test_text_tokens_and_parser(self):
    d = dlg.Dialogue(TABLE, dlg.Constraints(airline="a", stops="stop"),
                     ("time", "airline", "stops"), 2)
    self.assertEqual("".join(dlg.segments(d)),
                     "1 a direct am\n2 b stop pm\n3 a stop am\n4 c direct pm\n"
                     "customer: time any\ncustomer: airline a\ncustomer: stops stop\n"
                     "agent: book 3\n")
    tok = dlg.make_tokenizer(4)
    ids, seg = dlg.encode(d, tok)
    self.assertEqual(tok.decode(ids), "".join(dlg.segments(d)))
    self.assertEqual(seg, sorted(seg))
    self.assertEqual(seg[-3:], [5, 5, 5])  # " book", " 3", "\n"
    self.assertEqual(dlg.max_tokens(dlg.DialogueConfig(num_flights=4), tok), 37)
    for text, action in [(" book 3\n", 2), ("agent: book 1", 0), (" no flight\n", 4),
                         ("no flight\ncustomer: time am", 4), (" book 5\n", None),
                         (" book 0", None), (" book", None), ("book 2 please", None), ("", None),
                         (" book 12\n", None), (" no\n", None)]:
      self.assertEqual(dlg.parse_action(text, 4), action, msg=text)

  def test_config_validation(self):
    with self.assertRaisesRegex(ValueError, "DialogueConfig.noise=1.5"):
      dlg.DialogueConfig(noise=1.5)
    with self.assertRaisesRegex(ValueError, "model.max_len=30 is shorter"):
      calm.Config(model=calm.Config().model.replace(max_len=30))
    with self.assertRaisesRegex(ValueError, "model.vocab_size=41 must equal"):
      calm.Config(model=calm.Config().model.replace(vocab_size=41))
    with self.assertRaisesRegex(ValueError, r"unknown \['ppo'\]"):
      calm.Config(variants=("bc", "ppo"))
    with self.assertRaisesRegex(ValueError, "unknown calm preset 'huge'"):
      calm_configs.get_config("huge")


class RelabelTest(absltest.TestCase):

  def _counting(self, correct_at):
    calls = {"sample": 0, "check": 0}

    def sample(rng):  # 0, 1, 2, ... (consumes no randomness)
      del rng
      calls["sample"] += 1
      return calls["sample"] - 1

    def is_correct(context, dialogue, action):
      del dialogue
      calls["check"] += 1
      return context == correct_at and action == "a"

    return calls, sample, is_correct

  def test_exact_calls(self):
    rng = np.random.default_rng(0)
    calls, sample, is_correct = self._counting(correct_at=3)
    self.assertEqual(calm.relabel(-1, None, "a", rng, sample, is_correct, keep_prob=0.0,
                                  max_tries=10), (3, True))
    self.assertEqual(calls, {"sample": 4, "check": 4})
    calls, sample, is_correct = self._counting(correct_at=3)
    self.assertEqual(calm.relabel(-1, None, "a", rng, sample, is_correct, keep_prob=0.0,
                                  max_tries=3), (-1, False))  # retry cap: original back
    self.assertEqual(calls, {"sample": 3, "check": 4})
    calls, sample, is_correct = self._counting(correct_at=3)
    self.assertEqual(calm.relabel(3, None, "a", rng, sample, is_correct, keep_prob=1.0,
                                  max_tries=10), (3, True))
    self.assertEqual(calls, {"sample": 0, "check": 1})

  def test_keep_prob_counts_match_the_rng(self):
    rng, mirror = np.random.default_rng(7), np.random.default_rng(7)
    kept = 0
    for _ in range(500):
      _, sample, is_correct = self._counting(correct_at=0)
      context, ok = calm.relabel(-1, None, "a", rng, sample, is_correct, keep_prob=0.2,
                                 max_tries=5)
      kept += context == -1
      self.assertEqual(ok, context == 0)
    self.assertEqual(kept, int((mirror.random(500) < 0.2).sum()))  # one uniform per call
    with self.assertRaisesRegex(ValueError, "keep_prob"):
      calm.relabel(0, None, "a", rng, sample, is_correct, keep_prob=2.0, max_tries=1)

  def test_relabel_makes_logged_actions_valid(self):
    logged = dlg.log_dialogues(200, seed=3, config=dlg.DialogueConfig(noise=0.5))
    rng = np.random.default_rng(0)
    oks = []
    for d in logged:
      table, ok = calm.relabel_dialogue(d, rng, keep_prob=0.0, max_tries=200)
      self.assertEqual(ok, dlg.is_success(table, d.constraints, d.action))
      self.assertLen(table, 3)
      # Only "no flight" for a customer who accepts anything can never be made correct.
      self.assertTrue(ok or (d.action == 3 and d.constraints == dlg.Constraints()), msg=d)
      oks.append(ok)
    self.assertGreater(np.mean(oks), 0.9)
    stats = calm.relabel_stats(logged, calm.Config(keep_prob=0.0))
    self.assertGreater(stats["relabeled_success"], stats["logged_success"] + 0.3)

  def test_relabeled_batch_is_conditioned_on_the_new_table(self):
    # Parse the table back out of each row's tokens: with relabeling the LM sees a table under
    # which the logged action is valid, and the aux labels are that table's valid set.
    config = calm.Config(keep_prob=0.0, max_tries=200, task=dlg.DialogueConfig(noise=0.5))
    logged = dlg.log_dialogues(64, seed=4, config=config.task)
    tok = dlg.make_tokenizer(config.task.num_flights)
    for relabel_contexts in (False, True):
      data = calm.DialogueBatches(logged, config, relabel_contexts)
      batch = next(iter(data))
      rows = [logged[i] for i in np.random.default_rng((config.train.seed, 0)).integers(
          0, len(logged), config.train.batch_size)]  # the rows `draw` picks for batch 0
      valid_under_seen, changed = [], 0
      for d, tokens, seg, valid in zip(rows, batch["tokens"], batch["segment"],
                                       batch["valid"]):
        lines = tok.decode(tokens[(seg == 0)][1:]).strip().split("\n")  # BOS dropped
        table = tuple(dlg.Flight(*line.split()[1:]) for line in lines)
        changed += table != d.table
        self.assertEqual(tok.decode(tokens[seg == calm.NUM_TURNS + 2]),
                         dlg.action_text(d.action, config.task.num_flights))
        np.testing.assert_array_equal(np.flatnonzero(valid),
                                      dlg.valid_actions(table, d.constraints))
        valid_under_seen.append(dlg.is_success(table, d.constraints, d.action))
      if relabel_contexts:
        self.assertGreater(changed, len(rows) // 2)
        self.assertGreater(np.mean(valid_under_seen), 0.9)
      else:
        self.assertEqual(changed, 0)
        self.assertLess(np.mean(valid_under_seen), 0.8)


class ReplicatesTest(absltest.TestCase):

  def test_mean_se_and_combined_row(self):
    mean, se = calm.mean_se([0.5, 0.7, 0.9])
    self.assertAlmostEqual(mean, 0.7)
    self.assertAlmostEqual(se, 0.2 / np.sqrt(3))  # sample std 0.2 (ddof=1) over sqrt(3)
    self.assertEqual(calm.mean_se([0.4]), (0.4, None))
    row = lambda s, acc: {"relabel": True, "aux": True, "success": s, "success_ci95": 0.05,
                          "aux_accuracy_by_position": acc, "final_action_nll": 2 * s,
                          "success_curve": [[0, 0.0], [10, s]], "steps": 10}
    got = calm.combine_replicates([row(0.5, [0.2, 0.4]), row(0.9, [0.4, 1.0])])
    self.assertAlmostEqual(got["success"], 0.7)
    self.assertAlmostEqual(got["success_se"], 0.2)  # std(ddof=1) of (0.5, 0.9) = 0.283 / sqrt 2
    self.assertEqual(got["success_per_seed"], [0.5, 0.9])
    np.testing.assert_allclose(got["aux_accuracy_by_position"], [0.3, 0.7])
    np.testing.assert_allclose(got["success_curve"], [[0, 0.0], [10, 0.7]])
    self.assertAlmostEqual(got["final_action_nll"], 1.4)


def _reference_aux(status, slot, valid, mask):
  """numpy: p(book k) = p_status[0] p_slot[k], p(no flight) = p_status[1]."""
  softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(
      z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
  ps, pk = softmax(status.astype(np.float64)), softmax(slot.astype(np.float64))
  p = np.concatenate([ps[..., :1] * pk, ps[..., 1:]], axis=-1)  # [B, T, K + 1]
  nll = -np.log((p * valid[:, None, :]).sum(-1))
  correct = np.take_along_axis(valid, p.argmax(-1), axis=1)
  return (nll * mask).sum() / mask.sum(), (correct * mask).sum() / mask.sum()


class AuxLossTest(absltest.TestCase):

  def test_against_numpy_reference(self):
    rng = np.random.default_rng(0)
    status = rng.normal(size=(3, 4, 2)).astype(np.float32) * 2
    slot = rng.normal(size=(3, 4, 3)).astype(np.float32) * 2
    valid = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 1]], np.float32)  # several valid
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    want_loss, want_acc = _reference_aux(status, slot, valid, mask)
    fn = lambda *a: calm_loss.calm_aux_loss(*a, slotted=(True, False))
    for f in (fn, jax.jit(fn)):
      loss, metrics = f(status, slot, valid, mask)
      np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
      np.testing.assert_allclose(metrics["aux_accuracy"], want_acc, rtol=1e-6)
    # Hand-computed: uniform status and slots, valid {book 1, no flight}: p = 1/2 * 1/3 + 1/2.
    loss, metrics = jax.jit(fn)(np.zeros_like(status), np.zeros_like(slot),
                                np.tile([[1, 0, 0, 1]], (3, 1)), mask)
    np.testing.assert_allclose(loss, -np.log(2 / 3), rtol=1e-6)
    self.assertEqual(metrics["aux_accuracy"], 1.0)  # argmax ties resolve to book 1 (index 0)

  def test_logprobs_normalised_padding_row_and_shapes(self):
    z_s, z_k = jnp.array([[[0.3, -1.0, 2.0]]]), jnp.array([[[0.5, 0.1]]])
    logp = calm_loss.factored_action_logprobs(z_s, z_k, (True, False, True))
    self.assertEqual(logp.shape, (1, 1, calm_loss.num_actions((True, False, True), 2)))
    np.testing.assert_allclose(jnp.exp(logp).sum(), 1.0, rtol=1e-6)
    # A padding row without any valid action: zero loss, finite gradients.
    grad = jax.jit(jax.grad(lambda s: calm_loss.calm_aux_loss(
        s, jnp.ones((2, 1, 3)), jnp.array([[1, 0, 0, 0], [0, 0, 0, 0]]), jnp.ones((2, 1)),
        slotted=(True, False))[0]))(jnp.ones((2, 1, 2)))
    self.assertTrue(np.all(np.isfinite(grad)))
    with self.assertRaisesRegex(ValueError, "valid_BxA has shape"):
      calm_loss.calm_aux_loss(jnp.ones((2, 1, 2)), jnp.ones((2, 1, 3)), jnp.ones((2, 3)),
                              jnp.ones((2, 1)), slotted=(True, False))
    with self.assertRaisesRegex(ValueError, "slotted has 3 entries"):
      calm_loss.calm_aux_loss(jnp.ones((2, 1, 2)), jnp.ones((2, 1, 3)), jnp.ones((2, 4)),
                              jnp.ones((2, 1)), slotted=(True, False, False))

  def test_batch_masks(self):
    d = dlg.log_dialogues(1, seed=0, config=dlg.DialogueConfig(noise=0.0))[0]
    config = calm.Config()
    batch = calm.encode_dialogues([d], [d.table], config)
    seg = batch["segment"][0]
    n = int((seg >= 0).sum())
    self.assertEqual(batch["attention_mask"][0].sum(), n)
    # LM loss scores every token after the table; aux trains on every token before the action.
    np.testing.assert_array_equal(batch["lm_mask"][0][:n - 1], seg[1:n] >= 1)
    np.testing.assert_array_equal(batch["aux_mask"][0], (seg >= 0) & (seg < 5))
    self.assertEqual(batch["action_mask"][0].sum(), (seg == 5).sum())
    np.testing.assert_array_equal(np.flatnonzero(batch["valid"][0]),
                                  dlg.valid_actions(d.table, d.constraints))
    prompt, mask = calm.prompts(batch, pad_id=0)
    self.assertEqual(dlg.make_tokenizer(3).decode(prompt[0][mask[0] > 0])[-6:], "agent:")


class SmokeTest(absltest.TestCase):

  def test_smoke_preset_writes_results(self):
    # In process (the launcher's flag handling is tested once, in sft_test): a subprocess would
    # spend most of this test importing JAX and torch again.
    config = config_lib.from_dict(calm.Config, calm_configs.get_config("smoke").to_dict())
    with tempfile.TemporaryDirectory() as workdir:
      calm.train_and_evaluate(config, workdir)
      with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
      self.assertTrue(os.path.exists(os.path.join(workdir, "calm.png")))
    self.assertEqual(list(results["variants"]), list(config.variants))
    for row in results["variants"].values():
      self.assertBetween(row["success"], 0.0, 1.0)
      self.assertEqual(row["steps"], config.train.num_steps)
    self.assertLen(results["variants"]["calm"]["aux_accuracy_by_position"], len(calm.POSITIONS))
    self.assertBetween(results["relabeled_success"], results["logged_success"], 1.0)


if __name__ == "__main__":
  absltest.main()
