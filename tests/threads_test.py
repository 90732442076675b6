"""Tests for jaxlm.search.threads (spawn / join orchestration of APR rollouts) and its decoder,
jaxlm.search.decoding."""

import functools

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import testing
from jaxlm.envs import countdown as cd
from jaxlm.envs import countdown_attempts as ca
from jaxlm.envs import countdown_data as cdd
from jaxlm.envs import countdown_traces as ct
from jaxlm.models import Transformer
from jaxlm.search import decoding
from jaxlm.search import threads

TOK = cdd.trace_tokenizer()
KEY = jax.random.key(0)
# The fixture of countdown_traces_test (written out there; max_children=2, child_expansions=2).
FIXTURE = cd.Problem((1, 1, 1, 4), 12)


Script = functools.partial(testing.ScriptedDecoder, tokenizer=TOK)


def rollout_texts(problem, max_children=2, child_expansions=2):
  return ct.apr_texts(ct.apr_trace(problem, max_children, child_expansions))


def tiny_decoder(max_len, temperature):
  """(model, params, decode) of a random tiny transformer over the trace vocabulary."""
  model = Transformer(testing.tiny_model(vocab_size=TOK.vocab_size, max_len=max_len))
  params = nn.meta.unbox(model.init(KEY, jnp.zeros((1, 8), jnp.int32))["params"])
  return model, params, decoding.make_decode(model, params, temperature=temperature)


def spawn_then_give_up(decode):
  """A decode whose parent is scripted (the fixture's spawn of two children, then a give-up
  after their join) and whose children `decode` writes: (decode, script, text before join)."""
  parent, _ = rollout_texts(FIXTURE)
  before = parent[:parent.index("\njoin\n")]
  script = Script([ct.join_context(before, [None, None]) + ct.GIVE_UP])
  mixed = lambda p, n, stop, key: (script if len(stop) == 2 else decode)(p, n, stop, key)
  return mixed, script, before


def run(problems, script, **budget):
  prompts = [ct.thread_prompt(p.target, p.numbers) for p in problems]
  return threads.run(script, TOK, ct.APR_THREADS, prompts, threads.Budget(**budget), KEY)


class ScriptedTest(absltest.TestCase):

  def test_fixture_by_hand(self):
    parent, children = rollout_texts(FIXTURE)
    script = Script([parent, *children])
    [r] = run([FIXTURE], script)
    self.assertEqual((r.parent, r.children, r.stop), (parent, children, "eos"))
    # Characters are tokens. Parent prompt "Goal 12 from [1 1 1 4]\n" = 23. Segment 1, "#0 ..."
    # through "|": 17 + 5 edge lines * 26 + "spawn\n" 6 + 2 spawned lines * 5 + "|" 1 = 164.
    # Join block "\njoin\n  #4 no solution\n  #1 goal 1+1=2 2+1=3 4*3=12\n" = 1 + 5 + 17 + 29 = 52.
    # Segment 2 "Answer: #1" + eos = 10 + 1 = 11.
    # Child #4: "#0 [1 1 5] h=7\n" 15 + 5 * 19 + "  dead end\n" 11 + 26 + eos = 148.
    # Child #1: 15 + 24 + 7 * 19 + 13 + 22 + "Answer:\n" 8 + 6 + 6 + eos = 228.
    self.assertEqual(r.decoded_tokens, 164 + 148 + 228 + 11)
    self.assertEqual(r.longest_thread, 1 + 23 + 164 + 52 + 11)  # the parent (bos first)
    self.assertEqual(r.rounds, 3)
    self.assertEqual(r.sequential_tokens, 164 + 228 + 11)
    self.assertEqual(r.num_children, 2)
    self.assertEqual(script.calls, [1, 2, 1])
    self.assertEqual(cd.verify(FIXTURE, ct.answer_text(r.parent)), (True, "ok"))
    # Thread ids as decoded: bos + text + eos; the decoded mask drops bos, prompt and the join.
    for ids, decoded, text in zip(r.thread_ids, r.thread_decoded, (parent, *children)):
      self.assertEqual(list(ids), [TOK.bos_id] + TOK.encode(text) + [TOK.eos_id])
      self.assertEqual(len(decoded), len(ids))
    self.assertEqual(sum(map(sum, r.thread_decoded)), r.decoded_tokens)
    mask = r.thread_decoded[0]
    self.assertEqual(mask.index(True), 1 + 23)
    self.assertEqual(mask[1 + 23 + 164:1 + 23 + 164 + 52], (False,) * 52)  # the join block
    self.assertTrue(all(mask[1 + 23:1 + 23 + 164]) and all(mask[1 + 23 + 164 + 52:]))

  def test_batch_replays_serialised_traces(self):
    problems = [p for k in (3, 4) for p in cd.generate(cd.CountdownConfig(num_numbers=k), 7, 6)]
    problems.append(cd.Problem((3, 4), 12))  # answers at the root: no spawn
    traces = [ct.apr_trace(p, max_children=3, child_expansions=5) for p in problems]
    texts = [ct.apr_texts(t) for t in traces]
    script = Script([t for parent, children in texts for t in (parent, *children)])
    rollouts = run(problems, script, max_thread_tokens=4096, max_total_tokens=100_000)
    spawning = sum(bool(t.spawned) for t in traces)
    # One call for all parents, one for ALL children of all rows, one to resume the spawners.
    self.assertEqual(script.calls, [len(problems), sum(len(t.spawned) for t in traces), spawning])
    for p, trace, (parent, children), r in zip(problems, traces, texts, rollouts):
      self.assertEqual((r.parent, r.children, r.stop), (parent, children, "eos"))
      before = ct.parent_before_spawn(trace)
      join = len(ct.join_context(before, trace.outcomes)) - len(before) if trace.spawned else 0
      prompt_len = lambda text: len(text.split("\n", 1)[0]) + 1
      decoded = [len(t) - prompt_len(t) + 1 for t in (parent, *children)]  # + <eos>
      self.assertEqual(r.decoded_tokens, sum(decoded) - join)
      self.assertEqual(r.rounds, 3 if children else 1)
      self.assertEqual(r.num_children, len(trace.spawned))
      self.assertEqual(r.longest_thread, max(len(t) + 2 for t in (parent, *children)))
      self.assertEqual(cd.verify(p, ct.answer_text(r.parent))[0], trace.solution is not None)

  def test_two_spawn_rounds(self):
    parent, (first,) = rollout_texts(FIXTURE, max_children=1)  # #4 fails: the parent gives up
    _, (_, second) = rollout_texts(FIXTURE, max_children=2)  # #1's search
    # A parent that spawns #1 after #4 failed, instead of giving up.
    before = parent[:parent.index(ct.GIVE_UP)] + "spawn\n  #1\n|"
    full = ct.join_context(before, [("2+1=3", "4*3=12")]) + "Answer: #1"
    script = Script([full, first, second])
    [r] = run([FIXTURE], script)
    self.assertEqual((r.parent, r.children, r.stop), (full, (first, second), "eos"))
    self.assertEqual((r.rounds, r.num_children, script.calls), (5, 2, [1, 1, 1, 1, 1]))
    self.assertEqual(cd.verify(FIXTURE, ct.answer_text(r.parent)), (True, "ok"))
    [r] = run([FIXTURE], script, max_rounds=4)  # the second spawn no longer fits
    self.assertEqual((r.parent, r.stop, r.rounds), (before, "rounds", 3))


class BudgetTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.parent, self.children = rollout_texts(FIXTURE)
    self.script = Script([self.parent, *self.children])
    self.before = self.parent[:self.parent.index("\njoin\n")]

  def test_rounds_stop_at_the_spawn(self):
    for max_rounds in (1, 2):  # a spawn needs two more rounds: children, then the resumption
      [r] = run([FIXTURE], self.script, max_rounds=max_rounds)
      self.assertEqual((r.parent, r.children, r.stop, r.rounds), (self.before, (), "rounds", 1))
    [r] = run([FIXTURE], self.script, max_rounds=3)
    self.assertEqual((r.parent, r.stop, r.rounds), (self.parent, "eos", 3))

  def test_context_cap(self):
    [r] = run([FIXTURE], self.script, max_thread_tokens=100)
    self.assertEqual((r.stop, r.longest_thread, r.rounds, r.children), ("context", 100, 1, ()))
    self.assertEqual(r.parent, self.parent[:99])  # bos + 99 characters
    # Room for the spawn (188 tokens) and both children (170 and 250 tokens), for the 52-token
    # join block (240), not for the whole 11-token answer (251): the parent is cut at 250.
    [r] = run([FIXTURE], self.script, max_thread_tokens=250)
    self.assertEqual((r.stop, r.parent, r.rounds), ("context", self.parent[:249], 3))
    self.assertEqual(r.children, self.children)
    # At 228 the second child is cut (no outcome), so the join block reads two "no solution"
    # lines (40 tokens) and fills the parent to 228 exactly: no room to resume, the rollout
    # ends at the spawn.
    [r] = run([FIXTURE], self.script, max_thread_tokens=228)
    self.assertEqual((r.stop, r.parent, r.rounds), ("context", self.before, 2))
    self.assertEqual(r.children, (self.children[0], self.children[1][:227]))
    self.assertEqual(r.longest_thread, 228)

  def test_total_tokens(self):
    [r] = run([FIXTURE], self.script, max_total_tokens=200)
    # 164 for the parent, then (200 - 164) // 2 = 18 per child; no room left to resume.
    self.assertEqual((r.stop, r.decoded_tokens, r.rounds), ("tokens", 200, 2))
    self.assertEqual(r.children, tuple(c[:c.index("\n") + 19] for c in self.children))
    self.assertEqual(r.parent, self.before)

  def test_malformed_spawn(self):
    [r] = run([FIXTURE], Script(["Goal 12 from [1 1 1 4]\n|"]))
    self.assertEqual((r.stop, r.children, r.rounds), ("malformed", (), 1))

  def test_budget_validation(self):
    with self.assertRaisesRegex(ValueError, "Budget field"):
      threads.Budget(max_rounds=0)


class InterleaveTest(absltest.TestCase):
  """One thread, the environment writing e3's verdicts (countdown_attempts.env_verdict)."""

  def setUp(self):
    super().setUp()
    self.problems = [cd.Problem((2, 3, 4), 24), cd.Problem((1, 5, 6), 30)]
    self.prompts = [cdd.prompt_text(p) for p in self.problems]
    self.traces = [ca.format_attempts(self.problems[0], [("4+3=7|2 7", "7*2=14|14"),
                                                         ("3*2=6|4 6", "6*4=24|24")]),
                   ca.format_attempts(self.problems[1], [("6-5=1|1 1",)])]  # gives up
    self.respond = lambda i, text: ca.env_verdict(self.problems[i], text)

  def interleave(self, budget, **kw):
    script = Script([p + t for p, t in zip(self.prompts, self.traces)])
    kw = dict(dict(trigger=ca.VERDICT_START, respond=self.respond), **kw)
    return threads.interleave(script, TOK, self.prompts, budget, KEY, **kw), script

  def test_replays_traces_and_trains_only_the_policy(self):
    (solved, gave_up), script = self.interleave(1000)
    self.assertEqual([solved.parent, gave_up.parent],
                     [p + t for p, t in zip(self.prompts, self.traces)])
    self.assertEqual((solved.stop, solved.rounds, gave_up.stop, gave_up.rounds),
                     ("env", 2, "eos", 2))
    self.assertEqual(script.calls, [2, 2])  # both rows in each round
    ids, decoded = solved.thread_ids[0], solved.thread_decoded[0]
    self.assertEqual(ids[-1], TOK.eos_id)  # the environment ended the trace
    policy = TOK.decode([i for i, d in zip(ids, decoded) if d])
    self.assertEqual(policy, "attempt 1\n4+3=7|2 7\n7*2=14|14\nv"
                             "attempt 2\n3*2=6|4 6\n6*4=24|24\nv")
    env = TOK.decode([i for i, d in zip(ids, decoded) if not d and i != TOK.eos_id])
    self.assertEqual(env, self.prompts[0] + "erify 14 vs 24 no\nerify 24 vs 24 goal\n"
                          "Answer:\n3*2=6|4 6\n6*4=24|24")
    self.assertEqual(solved.decoded_tokens, len(policy))
    self.assertEqual(len(ids), 1 + len(self.prompts[0]) + len(self.traces[0]) + 1)
    # The give-up's <eos> is the policy's.
    self.assertTrue(gave_up.thread_decoded[0][-1])

  def test_budget_counts_the_environment(self):
    n = len(self.traces[0]) + 1  # with <eos>: fits exactly
    (solved, _), _ = self.interleave(n)
    self.assertEqual(solved.stop, "env")
    (cut, _), _ = self.interleave(n - 5)  # the answer block is cut: no <eos>
    self.assertEqual((cut.stop, len(cut.thread_ids[0])),
                     ("tokens", 1 + len(self.prompts[0]) + n - 5))
    self.assertEqual(cut.parent, (self.prompts[0] + self.traces[0])[:len(self.prompts[0]) + n - 5])
    (early, _), _ = self.interleave(10)  # the policy's first segment is cut
    self.assertEqual((early.stop, early.rounds, early.decoded_tokens), ("tokens", 1, 10))

  def test_rounds_malformed_and_no_trigger(self):
    (solved, gave_up), _ = self.interleave(1000, max_rounds=1)
    self.assertEqual((solved.stop, gave_up.stop), ("rounds", "rounds"))
    self.assertTrue(solved.parent.endswith("verify 14 vs 24 no\n"))
    def broken(i, text):
      raise ValueError("no")
    (r, _), _ = self.interleave(1000, respond=broken)
    self.assertEqual((r.stop, r.rounds), ("malformed", 1))
    # Without a trigger the policy writes everything in one round.
    (r, _), _ = self.interleave(1000, trigger=None, respond=None)
    self.assertEqual((r.parent, r.stop, r.rounds), (self.prompts[0] + self.traces[0], "eos", 1))
    self.assertTrue(all(r.thread_decoded[0][1 + len(self.prompts[0]):]))
    with self.assertRaisesRegex(ValueError, "must be one token"):
      self.interleave(1000, trigger="ve")
    with self.assertRaisesRegex(ValueError, "max_new_tokens=0 must be >= 1"):
      self.interleave(0)


class TransformerTest(absltest.TestCase):

  def test_bucket(self):
    for n in range(1, 600):
      sizes = [1 << k for k in range(11)]
      self.assertEqual(decoding.bucket(n), min(b for b in sizes if b >= n), n)
      fine = sizes + [b * 3 // 4 for b in sizes if b >= 8]
      self.assertEqual(decoding.bucket(n, fine=True), min(b for b in fine if b >= n), n)
    self.assertEqual([decoding.bucket(n, fine=True) for n in (5, 7, 48, 49, 65, 97)],
                     [6, 8, 48, 64, 96, 128])

  def test_chunked_decode(self):
    cfg = testing.tiny_model(vocab_size=TOK.vocab_size, max_len=64)
    model = Transformer(cfg)
    params = nn.meta.unbox(model.init(KEY, jnp.zeros((1, 8), jnp.int32))["params"])
    ids = [[TOK.bos_id] + TOK.encode(ct.thread_prompt(p.target, p.numbers))
           for p in (FIXTURE, cd.Problem((2, 3, 4), 24), cd.Problem((5, 6), 30))]
    budgets, stop_ids = [21, 5, 13], [TOK.eos_id, TOK.encode("=")[0]]
    # Greedy, so keys do not matter: decoding 4 tokens per call, each row re-prefilled with
    # what it decoded, continues exactly as one call does (stops and budgets included).
    whole = decoding.make_decode(model, params, temperature=0.0)(ids, budgets, stop_ids, KEY)
    chunked = decoding.make_decode(model, params, temperature=0.0, chunk=4)
    self.assertEqual(chunked(ids, budgets, stop_ids, KEY), whole)
    self.assertTrue(any(len(o) > 4 for o in whole), whole)  # some row spans several chunks
    # Sampling: each row ends at its budget or its first stop id, whatever the chunk.
    sampled = decoding.make_decode(model, params, temperature=1.0, chunk=3)
    for out, budget in zip(sampled(ids, budgets, stop_ids, KEY), budgets):
      self.assertTrue(len(out) == budget or (out and out[-1] in stop_ids), out)
      self.assertFalse(set(out[:-1]) & set(stop_ids))
    with self.assertRaisesRegex(ValueError, "chunk=0 must be >= 1"):
      decoding.make_decode(model, params, chunk=0)

  def test_decode_and_smoke(self):
    model, params, decode = tiny_decoder(64, 1.0)
    prompts = [ct.thread_prompt(p.target, p.numbers) for p in (FIXTURE, cd.Problem((2, 3, 4), 24))]
    ids = [[TOK.bos_id] + TOK.encode(p) for p in prompts]
    stop_ids = [TOK.eos_id] + TOK.encode(ct.SPAWN_END)
    # The shapes of run's first round below (one compilation); with this key no row stops early.
    outs = decode(ids, [24, 5], stop_ids, jax.random.key(3))
    self.assertEqual([len(o) for o in outs], [24, 5])  # each row its own budget
    # Three rows are padded to four (a copy of the first, one token) and cut back to three.
    outs3 = decode(ids + ids[:1], [24, 5, 7], stop_ids, jax.random.key(3))
    # At most two rows per call: the first two rows decode as the two-row call above did.
    small = decoding.make_decode(model, params, temperature=1.0, max_batch=2)
    chunked = small(ids + ids[:1], [24, 5, 7], stop_ids, jax.random.key(3))
    self.assertEqual(chunked[:2], small(ids, [24, 5], stop_ids,
                                        jax.random.split(jax.random.key(3), 2)[0]))
    # Long prompts take fewer rows per call: 2 rows of a 32-token prompt and 32-token decode
    # (padded) fit 2 x 32 x 64 query x key entries; the calls are then those of max_batch=2.
    tight = decoding.make_decode(model, params, temperature=1.0, max_attention=2 * 32 * 64 + 99)
    self.assertEqual(tight(ids + ids[:1], [24, 5, 7], stop_ids, jax.random.key(3)), chunked)
    self.assertNotEqual(chunked, outs3)  # (the split is visible: other keys, other samples)
    for outs in (outs3, chunked):
      self.assertLen(outs, 3)
      for out, budget in zip(outs, [24, 5, 7]):  # full, or cut at its first stop id
        self.assertTrue(len(out) == budget or (out and out[-1] in stop_ids), out)
        self.assertFalse(set(out[:-1]) & set(stop_ids))
    budget = threads.Budget(max_rounds=3, max_total_tokens=60, max_thread_tokens=48)
    for r, prompt in zip(threads.run(decode, TOK, ct.APR_THREADS, prompts, budget, KEY), prompts):
      self.assertTrue(r.parent.startswith(prompt))
      self.assertIn(r.stop, ("eos", "context", "tokens", "rounds", "malformed"))
      self.assertLessEqual(r.longest_thread, 48)
      self.assertLessEqual(r.decoded_tokens, 60)
      self.assertBetween(r.rounds, 1, 3)
      if not r.children:  # then every decoded token is in the parent's thread
        self.assertEqual(r.longest_thread, 1 + len(TOK.encode(prompt)) + r.decoded_tokens)
    # Children through the transformer (same compiled shapes), the parent replayed: the
    # fixture's spawn, then a give-up after the (random, so unsolved) children's join.
    mixed, script, before = spawn_then_give_up(decode)
    gave_up = script.texts[0]
    budget = threads.Budget(max_total_tokens=240, max_thread_tokens=300)
    [r] = threads.run(mixed, TOK, ct.APR_THREADS, [prompts[0]], budget, KEY)
    # With this key both children end (<eos>) within their 30 tokens: the parent resumes.
    self.assertEqual((r.parent, r.stop, r.rounds, r.num_children), (gave_up, "eos", 3, 2))
    self.assertEqual(script.calls, [1, 1])
    child_tokens = r.decoded_tokens - 164 - len(ct.GIVE_UP) - 1
    self.assertBetween(child_tokens, 2, 76)  # each child's share is (240 - 164) // 2
    for child, child_prompt in zip(r.children, ct.child_prompts(before)):
      self.assertTrue(child.startswith(child_prompt))
      child_tokens -= len(child) - len(child_prompt)  # at most: specials decode to no text
    self.assertGreaterEqual(child_tokens, 0)

  def test_thread_ids_replay_the_decode_contexts(self):
    """RL trains on `Rollout.thread_ids` (`pg_threads.rollout_rows`): the trainer's forward on
    them must read the contexts the model decoded in, children after a join included. Greedy,
    every id the model decoded is then the forward's argmax at the position before it."""
    model, params, decode = tiny_decoder(128, 0.0)
    prompts = [ct.thread_prompt(p.target, p.numbers) for p in (FIXTURE, cd.Problem((2, 3, 4), 24))]
    budget = threads.Budget(max_rounds=3, max_total_tokens=60, max_thread_tokens=48)
    alone = threads.run(decode, TOK, ct.APR_THREADS, prompts, budget, KEY)
    mixed, _, _ = spawn_then_give_up(decode)
    [spawned] = threads.run(mixed, TOK, ct.APR_THREADS, prompts[:1],
                            threads.Budget(max_total_tokens=240, max_thread_tokens=300), KEY)
    self.assertLen(spawned.thread_ids, 3)
    checked = decoded = 0
    for ids, flags in [(r.thread_ids[0], r.thread_decoded[0]) for r in alone] + list(
        zip(spawned.thread_ids[1:], spawned.thread_decoded[1:])):
      x = jnp.asarray(ids)[None]
      logits = np.asarray(model.apply({"params": params}, x,
                                      attention_mask_BxT=jnp.ones_like(x)).logits[0])
      at = np.flatnonzero(flags)  # decoded ids, each predicted at the position before it
      top2 = np.sort(logits[at - 1], -1)[:, -2:]
      clear = top2[:, 1] - top2[:, 0] > 1e-4  # no near-tie the summation order could flip
      np.testing.assert_array_equal(logits[at - 1].argmax(-1)[clear], np.asarray(ids)[at][clear],
                                    TOK.decode(ids))
      decoded, checked = decoded + at.size, checked + clear.sum()
    self.assertGreater(decoded, 60)
    self.assertGreaterEqual(checked, 0.9 * decoded)


  def test_thread_logp_is_the_samplers(self):
    """`make_decode`'s completions carry the sampler's log-probs (temperature 0.7): each decoded
    id's equals the full forward's on `Rollout.thread_ids` (the row RL trains on); a scripted
    decoder's plain lists give NaN; bos, prompts and join blocks 0."""
    model, params, decode = tiny_decoder(128, 0.7)
    mixed, _, _ = spawn_then_give_up(decode)
    prompt = ct.thread_prompt(FIXTURE.target, FIXTURE.numbers)
    [r] = threads.run(mixed, TOK, ct.APR_THREADS, [prompt],
                      threads.Budget(max_total_tokens=240, max_thread_tokens=300), KEY)
    self.assertLen(r.thread_logp, 3)
    for i, (ids, flags, logp) in enumerate(zip(r.thread_ids, r.thread_decoded, r.thread_logp)):
      flags, logp = np.asarray(flags), np.asarray(logp)
      self.assertLen(logp, len(ids))
      np.testing.assert_array_equal(logp[~flags], 0.0)
      at = np.flatnonzero(flags)
      if i == 0:  # the scripted parent
        self.assertTrue(np.all(np.isnan(logp[at])))
        continue
      x = jnp.asarray(ids)[None]
      logits = model.apply({"params": params}, x, attention_mask_BxT=jnp.ones_like(x)).logits[0]
      want = jax.nn.log_softmax(logits / 0.7)[at - 1, np.asarray(ids)[at]]
      self.assertGreater(at.size, 1)
      np.testing.assert_allclose(logp[at], want, atol=2e-5)


if __name__ == "__main__":
  absltest.main()
