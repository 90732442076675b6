"""Tests for jaxlm.data: tokenizers, text trajectories (JSONL, validation), RLBatch building."""

import json
import os
import tempfile

import jax
import numpy as np
from absl.testing import absltest, parameterized

from jaxlm.data import (HFTokenizer, RLBatch, SimpleTokenizer, TextTrajectory, next_window_rows,
                        read_jsonl, stack_batches, to_rl_batch, top_fraction_by_return,
                        write_jsonl)
from jaxlm.rl import returns

TOK = SimpleTokenizer.chars("abcdefgh.\n")  # ids: pad 0, eos 1, bos 2, 'a' 3, ..., '\n' 12


def traj(texts, is_action, rewards, done=True):
  return TextTrajectory(texts, is_action, rewards, done)


def long_episode(steps=6, done=True):
  texts, acts, rews = ["ab.\n"], [False], [0.0]
  for k in range(steps):
    texts += ["c" * (1 + k % 2), "d.\n"]
    acts += [True, False]
    rews += [float(k) - 2.0, 0.0]
  return traj(texts, acts, rews, done)


class TokenizerTest(parameterized.TestCase):

  def test_char_roundtrip_and_ids(self):
    self.assertEqual(TOK.encode("ab\n"), [3, 4, 12])
    self.assertEqual(TOK.decode([2, 3, 4, 12, 1, 0]), "ab\n")
    self.assertEqual((TOK.pad_id, TOK.eos_id, TOK.bos_id, TOK.vocab_size), (0, 1, 2, 13))

  def test_unknown_raises(self):
    with self.assertRaisesRegex(ValueError, "'z'"):
      TOK.encode("az")
    with self.assertRaisesRegex(ValueError, "outside the vocabulary"):
      TOK.decode([99])

  def test_word_level_deterministic_and_lossless(self):
    texts = ["The goal is at 8, 6.\n", "move up\n"]
    a, b = SimpleTokenizer.words(texts), SimpleTokenizer.words(texts[::-1])
    self.assertEqual(a.pieces, b.pieces)
    self.assertEqual(a.split("move up\n"), ["move", " up", "\n"])
    for text in texts + ["unseen words 12!\n"]:  # unseen words fall back to characters
      self.assertEqual(a.decode(a.encode(text)), text)

  def test_phrase_level(self):
    tok = SimpleTokenizer.phrases([" move up", " 1 0", "The goal"], ["The goal is 1 0 move up"])
    text = "The goal is 1 0. move up move upward 1 2"
    pieces = tok.split(text)
    self.assertEqual(pieces[:4], ["The goal", " is", " 1 0", "."])
    self.assertEqual(pieces[4:7], [" move up", " move up", "w"])  # longest phrase first
    self.assertEqual(tok.decode(tok.encode(text)), text)
    self.assertEqual(len(set(tok.pieces)), tok.vocab_size)
    with self.assertRaisesRegex(ValueError, "non-empty"):
      SimpleTokenizer.phrases(["", "x"])
    with self.assertRaisesRegex(ValueError, "not in the vocabulary.*zz"):
      SimpleTokenizer(["a"], "word", phrases=["zz"])

  def test_hf_adapter(self):
    from tokenizers import Tokenizer, models, pre_tokenizers  # pylint: disable=g-import-not-at-top
    from transformers import PreTrainedTokenizerFast  # pylint: disable=g-import-not-at-top
    vocab = {"<eos>": 0, "<pad>": 1, "hello": 2, "world": 3, "[UNK]": 4}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = HFTokenizer(PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>",
                                             pad_token="<pad>"))
    self.assertEqual(hf.encode("hello world"), [2, 3])
    self.assertEqual((hf.eos_id, hf.pad_id, hf.bos_id, hf.vocab_size), (0, 1, 0, 5))
    self.assertEqual(hf.decode([2, 0, 3]), "hello world")
    batch = to_rl_batch([traj(["hello", "world"], [False, True], [0.0, 1.0])], hf.hf,
                        max_len=4)  # raw HF tokenizers are wrapped automatically
    np.testing.assert_array_equal(batch.tokens, [[0, 2, 3, 1]])


class TrajectoryTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("length", dict(is_action=[False]), "trajectory 3: field 'is_action' has length 1"),
      ("nan", dict(rewards=[0.0, float("nan")]), r"trajectory 3: field 'rewards'\[1\]"),
      ("empty_action", dict(texts=["x", ""]), r"trajectory 3: field 'texts'\[1\] is an empty"),
      ("reward_on_obs", dict(rewards=[1.0, 0.0]), r"'rewards'\[0\]=1.0 is on a non-action"),
      ("done_type", dict(done=1), "trajectory 3: field 'done' must be a bool"),
      ("no_action", dict(is_action=[False, False], rewards=[0.0, 0.0]), "no action segment"),
  )
  def test_validation_errors(self, change, msg):
    fields = dict(texts=["x", "y"], is_action=[False, True], rewards=[0.0, 1.0], done=True)
    fields.update(change)
    with self.assertRaisesRegex(ValueError, msg):
      TextTrajectory(**fields).validate(3)

  def test_jsonl_roundtrip_and_bad_line(self):
    trajs = [long_episode(), traj(["q\n", "ab"], [False, True], [0.0, -1.0], done=False)]
    with tempfile.TemporaryDirectory() as d:
      path = os.path.join(d, "data.jsonl")
      write_jsonl(path, trajs)
      self.assertEqual(read_jsonl(path), trajs)
      with open(path, "a") as f:
        f.write(json.dumps({"texts": ["a"], "is_action": [True], "rewards": [0.0]}) + "\n")
      with self.assertRaisesRegex(ValueError, r"trajectory 2: missing fields \['done'\]"):
        read_jsonl(path)

  def test_top_fraction_by_return(self):
    trajs = [traj(["o", "a"], [False, True], [0.0, r]) for r in (1.0, 5.0, -2.0, 5.0, 3.0)]
    top = top_fraction_by_return(trajs, 0.4)
    self.assertEqual([t.total_return for t in top], [5.0, 5.0])
    self.assertLen(top_fraction_by_return(trajs, 0.5), 3)  # ceil(2.5)
    with self.assertRaises(ValueError):
      top_fraction_by_return(trajs, 0.0)


class RLBatchTest(parameterized.TestCase):

  def test_exact_arrays(self):
    t = traj(["ab\n", "cd", "e\n", "f", "g\n"], [False, True, False, True, False],
             [0.0, -1.0, 0.0, 2.0, 0.0])
    b = to_rl_batch([t], TOK, max_len=12)
    np.testing.assert_array_equal(b.tokens, [[2, 3, 4, 12, 5, 6, 7, 12, 8, 9, 12, 0]])
    np.testing.assert_array_equal(b.attention_mask, [[1] * 11 + [0]])
    np.testing.assert_array_equal(b.action_mask, [[0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0]])
    np.testing.assert_array_equal(b.rewards, [[0, 0, 0, 0, 0, -1, 0, 0, 2, 0, 0, 0]])
    np.testing.assert_array_equal(b.dones, [[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]])
    np.testing.assert_array_equal(b.bootstrap_returns, [0.0])
    self.assertEqual(b.tokens.dtype, np.int32)
    self.assertEqual(b.rewards.dtype, np.float32)

  def test_chained_windows_cover_every_action_once_with_exact_mc(self):
    gamma = 0.9
    ep = long_episode(steps=6, done=True)
    full = to_rl_batch([ep], TOK, max_len=64)
    split = to_rl_batch([ep], TOK, max_len=12)
    self.assertEqual(full.shape[0], 1)
    self.assertGreater(split.shape[0], 2)
    # Every action token is trained (loss_mask) exactly once over the windows, in order.
    trained = split.loss_mask > 0
    acts_full = full.tokens[full.action_mask > 0]
    np.testing.assert_array_equal(acts_full, split.tokens[trained])
    np.testing.assert_array_equal(full.rewards[full.action_mask > 0], split.rewards[trained])
    np.testing.assert_array_equal(full.loss_mask, full.action_mask)  # one window: no look-ahead
    # Monte Carlo returns with bootstrap_returns equal the unsplit episode's returns, on the
    # trained actions and on the look-ahead ones alike.
    g_full = np.asarray(returns.batch_mc_returns(full, gamma=gamma))
    g_split = np.asarray(returns.batch_mc_returns(
        to_rl_batch([ep], TOK, max_len=12, gamma=gamma), gamma=gamma))
    mask_full = np.asarray(returns.decision_view(full).is_action) > 0
    view = returns.decision_view(split)
    trains = np.asarray(view.trains) > 0
    np.testing.assert_allclose(g_split[trains], g_full[mask_full], atol=1e-5)
    # Each non-final window ends with a look-ahead action (action_mask 1, loss_mask 0): the
    # action the next window trains first, after the same observation as context.
    for w in range(split.shape[0] - 1):
      n = int(split.attention_mask[w].sum())
      ahead = (split.action_mask[w] > 0) & (split.loss_mask[w] == 0)
      self.assertTrue(ahead[n - 1])
      nxt = split.tokens[w + 1]
      first_act = int(np.argmax(split.loss_mask[w + 1]))
      n_next_act = int(np.argmin(split.loss_mask[w + 1, first_act:]))
      np.testing.assert_array_equal(split.tokens[w, ahead], nxt[first_act:first_act + n_next_act])
      ctx = nxt[1:first_act]
      start = int(np.argmax(ahead))
      np.testing.assert_array_equal(split.tokens[w, start - len(ctx):start], ctx)
      self.assertEqual((split.dones[w] * split.loss_mask[w]).sum(), 0)  # terminal: last row
    self.assertEqual(split.dones[-1].sum(), 1)
    self.assertEqual(split.bootstrap_returns[-1], 0.0)

  def test_next_window_rows_pair_each_window_with_its_successor(self):
    eps = [long_episode(steps=6, done=True), long_episode(steps=4, done=True)]
    b = to_rl_batch(eps, TOK, max_len=12)
    nxt = next_window_rows(b)
    n_first = to_rl_batch(eps[:1], TOK, max_len=12).shape[0]
    # Within an episode row w continues in w + 1; an episode's last window has none.
    want = [w + 1 for w in range(b.shape[0])]
    want[n_first - 1] = want[-1] = -1
    np.testing.assert_array_equal(nxt, want)
    for w in np.flatnonzero(nxt >= 0):
      ahead = (b.action_mask[w] > 0) & (b.loss_mask[w] == 0)
      first = int(np.argmax(b.loss_mask[nxt[w]]))  # successor's first trained token
      self.assertEqual(b.tokens[w, ahead][0], b.tokens[nxt[w], first])
    with self.assertRaisesRegex(ValueError, "no successor"):
      next_window_rows(jax.tree.map(lambda x: x[:1], b))
    np.testing.assert_array_equal(next_window_rows(to_rl_batch(eps, TOK, max_len=64)), [-1, -1])

  def test_window_too_small_and_unbootstrappable(self):
    with self.assertRaisesRegex(ValueError, r"trajectory 1: action segment 1 .* > max_len=5"):
      to_rl_batch([traj(["a", "b"], [False, True], [0.0, 1.0]), long_episode(1)], TOK,
                  max_len=5)
    bad = traj(["a", "b"], [False, True], [0.0, 1.0], done=False)
    with self.assertRaisesRegex(ValueError, "trajectory 0: field 'done' is False"):
      to_rl_batch([bad], TOK, max_len=8)
    with self.assertRaisesRegex(ValueError, r"trajectory 0: field 'rewards'\[1\]"):
      to_rl_batch([traj(["a", "b"], [False, True], [0.0, float("inf")])], TOK, max_len=8)

  def test_padding_to_longest_and_stack(self):
    trajs = [long_episode(1), long_episode(3)]
    b = to_rl_batch(trajs, TOK, max_len=64, pad_to_max_len=False)
    self.assertEqual(b.shape, (2, int(b.attention_mask.sum(1).max())))
    both = stack_batches([b, b])
    self.assertEqual(both.shape, (4, b.shape[1]))
    both.validate()

  @parameterized.named_parameters(
      ("reward_off_action", "rewards", (0, 1), 1.0, "row 0 position 1: field 'rewards'"),
      ("first_token_action", "action_mask", (1, 0), 1.0, "row 1 position 0: field 'action_mask'"),
      ("done_off_action", "dones", (0, 2), 1.0, "field 'dones' is 1 on a non-action"),
      ("gap", "attention_mask", (0, 2), 0.0, "turns back on after padding"),
      ("nonbinary", "action_mask", (0, 3), 0.5, "is not 0/1"),
      ("loss_off_action", "loss_mask", (1, 2), 8.0, "row 1 position 2: field 'loss_mask' is "
       "non-zero on a non-action"),
      ("negative_loss", "loss_mask", (0, 4), -1.0, "field 'loss_mask' is negative"),
  )
  def test_validate_errors(self, field, where, value, msg):
    arrs = dict(tokens=np.ones((2, 5), np.int32), attention_mask=np.ones((2, 5), np.float32),
                action_mask=np.zeros((2, 5), np.float32), rewards=np.zeros((2, 5), np.float32),
                dones=np.zeros((2, 5), np.float32), loss_mask=np.zeros((2, 5), np.float32))
    arrs["action_mask"][0, 4] = 1.0
    arrs[field][where] = value
    with self.assertRaisesRegex(ValueError, msg):
      RLBatch(**arrs).validate()
    arrs[field][where] = 0.0 if field != "action_mask" else arrs[field][where]
    if field == "loss_mask":  # weights above 1 on actions are fine
      arrs["loss_mask"][0, 4] = 8.0
      RLBatch(**arrs).validate()

  def test_validate_shape(self):
    with self.assertRaisesRegex(ValueError, "field 'rewards' has shape"):
      RLBatch(np.ones((2, 5), np.int32), *[np.ones((2, 5))] * 2, np.zeros((2, 4)),
              np.zeros((2, 5))).validate()


if __name__ == "__main__":
  absltest.main()
