"""Context distillation: the KL loss, teacher/student alignment, task generators, composition
and the smoke preset end to end."""

import json
import os
import tempfile

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import config as config_lib
from jaxlm import testing
from jaxlm.algos import context_distill as cd
from jaxlm.algos import context_distill_experiments as cde
from jaxlm.losses import distill
from jaxlm.models import lm_networks
from experiments.configs import context_distill as cd_configs


def _np_kl(student_BxTxV, teacher_BxTxV, mask_BxT):
  """Reference: masked mean over positions of sum_v p (log p - log q), p teacher, q student."""
  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
  logp, logq = log_softmax(teacher_BxTxV), log_softmax(student_BxTxV)
  kl_BxT = (np.exp(logp) * (logp - logq)).sum(-1)
  return (kl_BxT * mask_BxT).sum() / mask_BxT.sum()


class LossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_kl_matches_numpy_reference(self):
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(2, 3, 5, 7)).astype(np.float32)
    mask = (rng.random((3, 5)) > 0.4).astype(np.float32)
    loss, metrics = self.variant(distill.context_distill_loss)(student, teacher, mask)
    np.testing.assert_allclose(loss, _np_kl(student, teacher, mask), rtol=1e-5)
    self.assertEqual(float(metrics["answer_tokens"]), mask.sum())
    agree = (student.argmax(-1) == teacher.argmax(-1))
    np.testing.assert_allclose(metrics["agreement"], (agree * mask).sum() / mask.sum(),
                               rtol=1e-6)

  def test_two_token_kl_by_hand(self):
    # p = (0.5, 0.5), q = (0.8, 0.2): KL = 0.5 log(0.5/0.8) + 0.5 log(0.5/0.2).
    teacher = np.log(np.array([[[0.5, 0.5]]], np.float32))
    student = np.log(np.array([[[0.8, 0.2]]], np.float32))
    loss, _ = distill.context_distill_loss(student, teacher, np.ones((1, 1), np.float32))
    self.assertAlmostEqual(float(loss), 0.5 * np.log(0.5 / 0.8) + 0.5 * np.log(0.5 / 0.2),
                           places=6)

  def test_zero_when_equal_and_no_teacher_gradient(self):
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32)
    mask = jnp.ones((2, 4))
    loss, _ = distill.context_distill_loss(logits, logits, mask)
    self.assertAlmostEqual(float(loss), 0.0, places=6)
    other = logits + jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32)
    g_teacher = jax.grad(lambda t: distill.context_distill_loss(other, t, mask)[0])(logits)
    np.testing.assert_array_equal(g_teacher, np.zeros_like(g_teacher))
    # The student's gradient is (softmax(student) - softmax(teacher)) / mask sum.
    g_student = jax.grad(lambda s: distill.context_distill_loss(s, logits, mask)[0])(other)
    want = (jax.nn.softmax(other) - jax.nn.softmax(logits)) / 8.0
    np.testing.assert_allclose(g_student, want, atol=1e-6)

  def test_masked_positions_do_not_count(self):
    rng = np.random.default_rng(2)
    student, teacher = rng.normal(size=(2, 1, 3, 4)).astype(np.float32)
    mask = np.array([[1.0, 0.0, 0.0]], np.float32)
    garbage = student.copy()
    garbage[0, 1:] = 1e3
    a, _ = distill.context_distill_loss(student, teacher, mask)
    b, _ = distill.context_distill_loss(garbage, teacher, mask)
    self.assertAlmostEqual(float(a), float(b), places=6)

  def test_shape_errors(self):
    with self.assertRaises(AssertionError):
      distill.context_distill_loss(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 5)), jnp.ones((2, 3)))


class AlignmentTest(absltest.TestCase):
  # Teacher rows [c; x; y]: row 0 has c = (11, 12), x = (21,), y = (31, 32);
  # row 1 has c = (13,), x = (22, 23), y = (33,).

  def test_right_padding(self):
    tokens = np.array([[11, 12, 21, 31, 32, 0],
                       [13, 22, 23, 33, 0, 0]], np.int32)
    mask = (tokens > 0).astype(np.int32)
    align = distill.strip_context(tokens, mask, np.array([2, 1]))
    np.testing.assert_array_equal(align.tokens_BxT, [[21, 31, 32, 0, 0, 0],
                                                     [22, 23, 33, 0, 0, 0]])
    np.testing.assert_array_equal(align.mask_BxT, [[1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(align.teacher_index_BxT[:, :3], [[2, 3, 4], [1, 2, 3]])
    # Gathered teacher values land where the same token sits in the student row.
    gathered = align.gather(tokens)
    np.testing.assert_array_equal(np.where(align.mask_BxT > 0, gathered, 0), align.tokens_BxT)
    answer = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 0, 0]], np.float32)
    # Positions whose next token is an answer token: y starts at student index 1 (row 0) and 2.
    np.testing.assert_array_equal(align.decision_mask(answer), [[1, 1, 0, 0, 0, 0],
                                                                [0, 1, 0, 0, 0, 0]])

  def test_left_padding(self):
    tokens = np.array([[0, 11, 12, 21, 31, 32],
                       [0, 0, 13, 22, 23, 33]], np.int32)
    mask = (tokens > 0).astype(np.int32)
    align = distill.strip_context(tokens, mask, np.array([2, 1]), padding="left")
    np.testing.assert_array_equal(align.tokens_BxT, [[0, 0, 0, 21, 31, 32],
                                                     [0, 0, 0, 22, 23, 33]])
    np.testing.assert_array_equal(align.mask_BxT, [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
    np.testing.assert_array_equal(align.teacher_index_BxT, [list(range(6))] * 2)
    answer = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1]], np.float32)
    np.testing.assert_array_equal(align.decision_mask(answer), [[0, 0, 0, 1, 1, 0],
                                                                [0, 0, 0, 0, 1, 0]])

  def test_same_logits_as_unpadded_student(self):
    """The gathered teacher frame equals an [x; y] model call: a model that ignores context
    (a tiny transformer on the student rows) gives identical logits on both paddings."""
    _, init_fn, logits_fn = lm_networks(testing.tiny_model(vocab_size=40, max_len=8))
    params = jax.jit(init_fn)(jax.random.PRNGKey(0))  # jitted: compiled once, not op by op
    logits_fn = jax.jit(logits_fn)  # one [1, 6] program for all three calls
    right = np.array([[11, 12, 21, 31, 32, 0]], np.int32)
    left = np.array([[0, 11, 12, 21, 31, 32]], np.int32)
    outs = []
    for tokens, padding in ((right, "right"), (left, "left")):
      a = distill.strip_context(tokens, (tokens > 0).astype(np.int32), np.array([2]),
                                padding=padding)
      logits = logits_fn(params, a.tokens_BxT, a.mask_BxT)
      outs.append(np.asarray(logits)[a.mask_BxT > 0])
    # The [x; y] row alone, right-padded to the same width (padding after a causal row's end
    # cannot change its outputs).
    direct = logits_fn(params, np.array([[21, 31, 32, 0, 0, 0]], np.int32),
                       np.array([[1, 1, 1, 0, 0, 0]], np.int32))
    np.testing.assert_allclose(outs[0], direct[0, :3], atol=1e-5)
    np.testing.assert_allclose(outs[1], direct[0, :3], atol=1e-5)

  def test_errors(self):
    tokens = np.array([[1, 2, 0, 3]], np.int32)
    with self.assertRaisesRegex(ValueError, "rows \\[0\\] of mask_BxT are not right-padded"):
      distill.strip_context(tokens, (tokens > 0).astype(np.int32), np.array([1]))
    ok = np.array([[1, 2, 3, 0]], np.int32)
    with self.assertRaisesRegex(ValueError, "context_lengths_B \\[4\\] at rows \\[0\\]"):
      distill.strip_context(ok, (ok > 0).astype(np.int32), np.array([4]))
    with self.assertRaisesRegex(ValueError, "padding='middle'"):
      distill.strip_context(ok, ok > 0, np.array([1]), padding="middle")


class GeneratorTest(absltest.TestCase):

  def test_cipher(self):
    rng = np.random.default_rng(0)
    rule = cd.random_rule(rng, 6)
    self.assertEqual(sorted(rule), list("abcdef"))
    self.assertEqual(cd.apply_rule("cadbfe", "abcf"), "cade")  # a->c, b->a, c->d, f->e
    ex = cd.cipher_example("cadbfe", "fade", cd.rule_context("cadbfe"))
    self.assertEqual((ex.context, ex.prompt, ex.answer), ("cadbfe|", "fade=", "ecbf"))
    self.assertEqual(cd.examples_context("cadbfe", ["ab", "fe"]), "ab=ca;fe=ef;")
    with self.assertRaisesRegex(ValueError, "letter 'g' of 'ag'"):
      cd.apply_rule("cadbfe", "ag")
    words = cd.all_words(3, 2)
    self.assertLen(words, 9)
    for e in cd.cipher_corpus(rng, 60, 6, cd.all_words(6, 4), 3, (1, 1, 1)):
      self.assertLen(e.answer, 4)
      if e.context.endswith("|"):  # rule context: the answer is the rule applied
        self.assertEqual(e.answer, cd.apply_rule(e.context[:-1], e.prompt[:-1]))
      elif e.context:  # example context: every example is consistent with one substitution
        pairs = [p.split("=") for p in e.context.rstrip(";").split(";")] + [
            [e.prompt[:-1], e.answer]]
        table = {}
        for w, y in pairs:
          for a, b in zip(w, y):
            self.assertEqual(table.setdefault(a, b), b, msg=e)

  def test_addition_scratchpad_exact(self):
    ex = cd.addition_example(347, 285, 3, scratchpad=True)
    self.assertEqual(ex.context + ex.prompt, "#347+285=")
    self.assertEqual(ex.completion, "7+5+0=12,4+8+1=13,3+2+1=06,>0632")
    self.assertEqual(cd.parse_answer(ex.completion, ">"), "0632")
    self.assertEqual(cd.addition_example(347, 285, 3, False).completion, "0632")
    rng = np.random.default_rng(1)
    for a, b in cd.addition_pairs(rng, 200, 4):
      pad = cd.addition_scratchpad(a, b, 4)
      carry = 0
      for i, step in enumerate(pad.rstrip(",").split(",")):
        lhs, rhs = step.split("=")
        da, db, c = map(int, lhs.split("+"))
        self.assertEqual((da, db, c), (a // 10 ** i % 10, b // 10 ** i % 10, carry))
        self.assertEqual(int(rhs), da + db + c)
        carry = int(rhs[0])
      ex = cd.addition_example(a, b, 4, True)
      self.assertEqual(int(cd.parse_answer(ex.completion, ">")), a + b)
    self.assertIsNone(cd.parse_answer("1+2", ">"))
    with self.assertRaisesRegex(ValueError, "at most digits=2"):
      cd.addition_scratchpad(100, 1, 2)

  def test_teacher_and_answer_rows(self):
    tok = cd.tokenizer()
    rows = cd.teacher_rows([[5, 6]], [[7]], [[8, 1]], max_len=6, pad_id=0)
    np.testing.assert_array_equal(rows.tokens, [[5, 6, 7, 8, 1, 0]])
    np.testing.assert_array_equal(rows.answer_mask, [[0, 0, 0, 1, 1, 0]])
    np.testing.assert_array_equal(rows.context_lengths, [2])
    with self.assertRaisesRegex(ValueError, "teacher row 0 needs 5 tokens > max_len=4"):
      cd.teacher_rows([[5, 6]], [[7]], [[8, 1]], max_len=4, pad_id=0)
    x = tok.encode("12+34=")
    done = tok.encode("2+4+0=06,1+3+0=04,>046") + [tok.eos_id]
    cut = tok.encode("2+4+0=06,1+3")  # never ended
    no_delim = tok.encode("046") + [tok.eos_id]
    got = cd.answer_rows(tok, [x, x, x], [done, cut, no_delim], ">")
    self.assertEqual(got, [(x, tok.encode("046") + [tok.eos_id])])

  def test_kl_rows_keep_the_replay_context(self):
    tok = cd.tokenizer()
    enc = tok.encode
    replay = [cd.cipher_example("bacdef", "ab", cd.rule_context("bacdef"))]  # "bacdef|ab=ba"
    rows = cd.kl_rows(tok, enc("cadbfe|"), [enc("ab=")], [enc("ca") + [tok.eos_id]], replay)
    want = [enc("cadbfe|ab=ca") + [tok.eos_id], enc("bacdef|ab=ba") + [tok.eos_id]]
    np.testing.assert_array_equal(rows.tokens, want)
    # The distillation row drops its 7 context tokens for the student; the replay row keeps all.
    np.testing.assert_array_equal(rows.context_lengths, [7, 0])
    np.testing.assert_array_equal(rows.answer_mask, [[0] * 10 + [1] * 3] * 2)
    align = distill.strip_context(rows.tokens, rows.attention_mask, rows.context_lengths)
    np.testing.assert_array_equal(align.tokens_BxT[0, :6], enc("ab=ca") + [tok.eos_id])
    np.testing.assert_array_equal(align.tokens_BxT[1], rows.tokens[1])
    # Replay rows get the same KL as distillation rows: 3 answer positions each.
    np.testing.assert_array_equal(align.decision_mask(rows.answer_mask).sum(-1), [3, 3])

  def test_replay_sample(self):
    pool = [cd.cipher_example("abcdef", w, "abcdef|") for w in ("ab", "cd", "ef")]
    rng = np.random.default_rng(0)
    self.assertEqual(cd.replay_sample(rng, pool, 8, 0.0), [])
    # share 0.5: as many replay rows as distillation rows; 0.2 -> round(8 * 0.25) = 2.
    got = cd.replay_sample(rng, pool, 3, 0.5)
    self.assertCountEqual(got, pool)  # without replacement while the pool lasts
    self.assertLen(cd.replay_sample(rng, pool, 8, 0.2), 2)
    self.assertLen(cd.replay_sample(rng, pool, 6, 0.5), 6)  # then with replacement
    with self.assertRaisesRegex(ValueError, "share=1.0 must be in"):
      cd.replay_sample(rng, pool, 8, 1.0)
    with self.assertRaisesRegex(ValueError, "non-empty replay pool"):
      cd.replay_sample(rng, [], 8, 0.5)


class DistillTest(absltest.TestCase):

  def test_smoke_preset_composes_and_writes_results(self):
    config = config_lib.from_dict(cde.Config, cd_configs.get_config("smoke").to_dict())
    self.assertEqual(config.experiments, ("instruction",))
    self.assertGreater(config.replay_share, 0.0)  # replay is on (its rows: kl_rows test)
    with tempfile.TemporaryDirectory() as workdir:
      results = cde.train_and_evaluate(config, workdir)
      for name in ("results.json", "accuracy.png", "meta/metrics.jsonl",
                   "instruction_rule1/metrics.jsonl", "instruction_rule2/metrics.jsonl"):
        self.assertTrue(os.path.exists(os.path.join(workdir, name)), msg=name)
      with open(os.path.join(workdir, "results.json")) as f:
        saved = json.load(f)
    self.assertEqual(saved, json.loads(json.dumps(results)))
    r = saved["instruction"]
    for key in ("with_context", "no_context_before", "with_context_after",
                "no_context_after"):
      self.assertBetween(r[key], 0.0, 1.0)
    # Composition: the second distillation's teacher (the driver's frozen copy of the params
    # it started from) is exactly the first distillation's student.
    self.assertTrue(r["rule2_teacher_is_rule1_student"])
    self.assertBetween(r["then_rule1_with_context"], 0.0, 1.0)

  def test_config_errors(self):
    with self.assertRaisesRegex(ValueError, "unknown names \\['bogus'\\]"):
      cde.Config(experiments=("bogus",))
    with self.assertRaisesRegex(ValueError, "replay_share=1.5"):
      cde.Config(replay_share=1.5)
    with self.assertRaisesRegex(ValueError, "unknown context_distill preset 'huge'"):
      cd_configs.get_config("huge")
    with self.assertRaisesRegex(ValueError, "variant='soft'"):
      default = cde.Config()
      cd.distill_context("/nonexistent", default.model, None, "", [], default.distill_train,
                         variant="soft", max_new_tokens=1)


if __name__ == "__main__":
  absltest.main()
