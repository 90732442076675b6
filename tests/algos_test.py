"""Offline RL algorithms end to end on tiny Maze and Wordle runs: results, resume, policies."""

import dataclasses
import json
import os
import tempfile

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import ilql as ilql_configs
from jaxlm import config as config_lib
from jaxlm import evaluation
from jaxlm import testing
from jaxlm.algos import bc
from jaxlm.algos import ilql
from jaxlm.algos import offline
from jaxlm.data import to_rl_batch
from jaxlm.data.iterators import RandomBatches
from jaxlm.envs import maze
from jaxlm.envs import tasks
from jaxlm.envs import wordle as wordle_lib
from jaxlm.models import Transformer, lm_networks
from jaxlm.models import policy as policy_lib

TINY = testing.tiny_model()


def _config(train=None, **kw):
  base = dict(num_trajectories=24, bc_steps=4, eval_episodes=4, model=TINY, betas=(4.0, 0.0),
              train=testing.tiny_train(**(train or {})))
  return ilql.Config(**{**base, **kw})


class AlgosTest(absltest.TestCase):

  def _tmp(self) -> str:
    return self.enter_context(tempfile.TemporaryDirectory())

  def test_ilql_experiment_writes_results_and_plots(self):
    workdir = self._tmp()
    results = ilql.train_and_evaluate(_config(compare=("bc",)), workdir)
    self.assertEqual(set(results), {"bc", "ilql"})
    with open(os.path.join(workdir, "results.json")) as f:
      on_disk = json.load(f)
    for algo, row in on_disk.items():
      self.assertEqual(row["episodes"], 4, algo)
      self.assertTrue(-100 <= row["return"] <= 0, (algo, row))
      self.assertTrue(0 <= row["success"] <= 1, (algo, row))
      if row["return_ci"] == 0:  # every episode scored the same: normalised score is exact
        self.assertAlmostEqual(row["normalized"], maze.MAZE_SCORES.normalize(row["return"]))
    for name in ("beta_sweep.png", "learning_curves.png", "ilql/learning_curve.png",
                 "ilql/metrics.jsonl"):
      self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
    with open(os.path.join(workdir, "beta_sweep.json")) as f:
      self.assertEqual([r["beta"] for r in json.load(f)["ilql"]], [4.0, 0.0])

  def test_hf_checkpoint_initialises_every_transformer(self):
    # A tiny random GPT-2 with a word-level tokenizer over Maze text, saved like a Hub model.
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
    from tokenizers import Tokenizer, models, pre_tokenizers  # pylint: disable=g-import-not-at-top
    words = sorted({w for t in maze.Maze(True).texts() for w in t.replace(".", " . ")
                    .replace(",", " , ").split()})
    vocab = {w: i for i, w in enumerate(["<eos>", "[UNK]"] + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>")
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=2, n_head=2)).eval()
    ckpt = self._tmp()
    hf.save_pretrained(ckpt)
    hf_tok.save_pretrained(ckpt)
    config = _config(hf_model=ckpt, max_len=128, compare=(),
                     train=dict(num_steps=1, lr=0.0, warmup=1))
    data = offline.prepare(config, None)
    params, scorer = bc.train(bc.Config(**offline.shared_fields(config)), data, self._tmp())
    task = data.task
    self.assertEqual(task.tokenizer.vocab_size, len(vocab))
    ids = [task.tokenizer.bos_id] + task.tokenizer.encode(maze.Maze(True).texts()[5])
    logits, _ = scorer(params, jnp.asarray([ids]), jnp.ones((1, len(ids)), jnp.int32))
    with torch.no_grad():
      want = hf(torch.tensor([ids])).logits.numpy()
    np.testing.assert_allclose(np.asarray(logits), want, atol=1e-4)  # lr 0: the checkpoint
    bundle, _ = ilql.train(config, data, self._tmp(), policy_params=params)
    np.testing.assert_array_equal(bundle[0]["trunk"]["embed"]["embedding"],
                                  params["embed"]["embedding"])  # value trunk starts there too
    with self.assertRaisesRegex(ValueError, "config.json"):
      _config(hf_model=self._tmp())

  def test_pretrained_vocab_grows_at_the_end(self):
    # A policy over 11 ids loaded into a 16-id LM: the old ids keep their embeddings (tied
    # output too), so logits over them are unchanged; new ids keep the fresh init.
    small, big = (dataclasses.replace(TINY, vocab_size=v, max_len=8, pos="rope")
                  for v in (11, 16))
    _, init_small, logits_fn = lm_networks(small)
    old = init_small(jax.random.key(0))
    _, init_big, big_logits_fn = lm_networks(big, old)
    grown, fresh = init_big(jax.random.key(1)), lm_networks(big)[1](jax.random.key(1))
    unbox = nn.meta.unbox
    emb = unbox(grown)["embed"]["embedding"]
    np.testing.assert_array_equal(emb[:11], unbox(old)["embed"]["embedding"])
    np.testing.assert_array_equal(emb[11:], unbox(fresh)["embed"]["embedding"][11:])
    self.assertEqual(grown["embed"]["embedding"].names, ("vocab", "embed"))
    tokens, mask = jnp.array([[2, 5, 7, 10, 3]]), jnp.ones((1, 5), jnp.int32)
    np.testing.assert_allclose(big_logits_fn(unbox(grown), tokens, mask)[..., :11],
                               logits_fn(unbox(old), tokens, mask), rtol=1e-5, atol=1e-6)
    wide = dataclasses.replace(small, d_ff=128)  # an MLP width cannot be grown
    with self.assertRaisesRegex(ValueError, "only a shorter 'vocab' axis"):
      lm_networks(wide, old)[1](jax.random.key(0))
    with self.assertRaisesRegex(ValueError, "only a shorter 'vocab' axis"):  # nor shrunk
      lm_networks(dataclasses.replace(small, vocab_size=8), old)[1](jax.random.key(0))

  def test_killed_run_resumes_to_the_same_params(self):
    config = _config(variant="trlx", compare=())
    data = offline.prepare(config, None)
    straight, _ = ilql.train(config, data, self._tmp())

    workdir = self._tmp()
    with testing.killed_at(RandomBatches, 4):  # steps 1-3 ran and step 3 was checkpointed
      with self.assertRaises(testing.Interrupt):
        ilql.train(config, data, workdir)
    with self.assertRaisesRegex(ValueError, "resume"):
      ilql.train(config, data, workdir)
    resumed, _ = ilql.train(config, data, workdir, resume=True)
    jax.tree.map(np.testing.assert_array_equal, resumed, straight)

  def test_eval_prompt_is_the_training_window_context(self):
    # Maze: chained windows of 2 transitions; Wordle: the whole episode in one window.
    for env, tokenizer, max_len, transitions in (("maze_fo", "word", 192, 2),
                                                 ("wordle", "char", 136, 6)):
      task = tasks.make_task(env, tokenizer)
      episode = task.build_dataset(1, 3)[0]
      windows = to_rl_batch([episode], task.tokenizer, max_len=max_len, transitions=transitions)
      history = tuple(episode.segments)
      k = 0  # decisions seen so far
      for row, trained in zip(windows.tokens, windows.loss_mask):
        # Every trained action of the window: its context is the window up to that action.
        starts = np.flatnonzero(np.diff(np.concatenate([[0], trained])) > 0)
        for start in starts:
          prompt = evaluation.prompt_ids(history[:2 * k + 1], task.tokenizer, transitions)
          np.testing.assert_array_equal(prompt, row[:start])
          k += 1
      self.assertEqual(k, len(history) // 2, env)

  def test_candidate_scores_are_extracted_policy_log_probs(self):
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(3, 5, 7)), jnp.float32)
    adv = jnp.asarray(rng.normal(size=(3, 5, 7)), jnp.float32)
    tokens = jnp.asarray(rng.integers(0, 7, (3, 5)), jnp.int32)
    cand = jnp.array([[0, 0, 1, 1, 0], [0, 0, 0, 1, 1], [0, 1, 1, 1, 0]])
    score = evaluation.make_candidate_scorer(lambda p, t, m: (logits, adv), (0.0, 2.0), 0.5,
                                             adv_clip=1.0)
    got = np.asarray(score(None, tokens, jnp.ones_like(tokens), cand))
    for k, beta in enumerate((0.0, 2.0)):
      x = np.asarray(logits) + beta * np.clip(np.asarray(adv), -1, 1)
      logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
      for r in range(3):
        want = sum(logp[r, t - 1, tokens[r, t]] for t in range(1, 5) if cand[r, t])
        self.assertAlmostEqual(got[k, r], want / 0.5, places=4)

  def test_generation_policy_decodes_each_row_with_its_beta(self):
    task = tasks.make_task("wordle")
    tok, nl = task.tokenizer, task.tokenizer.encode("\n")[0]
    model = Transformer(TINY.replace(vocab_size=tok.vocab_size, max_len=136))
    params = jax.tree.map(jnp.asarray, lm_networks(model.cfg)[1](jax.random.key(0)))
    # Advantage +100 on "\n" only: beta 1 ends the action at once, beta 0 is the plain LM.
    ends = lambda heads, outs: (outs[0].logits, 100.0 * jax.nn.one_hot(
        jnp.full(outs[0].logits.shape[:2], nl), tok.vocab_size))
    policy = policy_lib.Policy(None, policy_lib.JointDecoder((model,), ends),
                               lambda p: {"models": (p,), "heads": None})
    act = evaluation.GenerationPolicy(policy, params, task, (0.0, 1.0), transitions=6,
                                      temperature=0.0, seed=0)
    short = (("Wordle:\n", False),)
    long = short + (("c r a n e\n", True), ("b y g b b\n", False))
    actions = act([short, long, long], [0, 1, 0])
    self.assertEqual(actions[1], "\n")
    for history, action in ((short, actions[0]), (long, actions[2])):
      seq = evaluation.prompt_ids(history, tok, 6)
      for _ in range(task.max_action_tokens):  # greedy decoding by full forward passes
        logits = model.apply({"params": params}, jnp.asarray([seq])).logits
        seq.append(int(np.argmax(logits[0, -1])))
        if seq[-1] == nl:
          break
      self.assertEqual(action, tok.decode(seq[len(evaluation.prompt_ids(history, tok, 6)):]))
    self.assertEqual(act.actions.tolist(), [2, 1])
    self.assertEqual(act.cut[1], 0)
    with self.assertRaisesRegex(TypeError, "models.policy.Policy"):
      offline.evaluate(policy.scorer, params, task, _config(env="wordle"), betas=(0.0,),
                       name="x")

  def test_wordle_bc_and_ilql_end_to_end(self):
    workdir = self._tmp()
    config = config_lib.from_dict(ilql.Config, {
        **ilql_configs.get_config("wordle_smoke").to_dict(), "compare": ("bc",)})
    ilql.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
    self.assertEqual(set(results), {"bc", "ilql"})
    for algo, row in results.items():
      self.assertContainsSubset({"return", "return_ci", "normalized", "success", "episodes",
                                 "beta", "cut_actions"}, set(row), algo)
      self.assertTrue(np.isfinite(row["return"]) and -6 <= row["return"] <= 0, (algo, row))
      self.assertEqual(row["episodes"], 2, algo)
    with open(os.path.join(workdir, "beta_sweep.json")) as f:
      self.assertEqual([r["beta"] for r in json.load(f)["ilql"]], [4.0, 0.0])

  def test_wordle_words_plays_a_subset_with_its_own_scores(self):
    task = tasks.make_task("wordle", wordle_words=100)
    words = set(wordle_lib.word_subset(100))
    self.assertEqual(task.name, "wordle100")  # also names the cached dataset file
    self.assertIs(task.scores, wordle_lib.SUBSET_SCORES[100])
    env = task.make_env()
    env.reset(0)
    self.assertIn(env.answer, words)
    outside = next(w for w in wordle_lib.load_words() if w not in words)
    self.assertEqual(env.step(wordle_lib.format_guess(outside)), ("\n", -1.0, False))
    for episode in task.build_dataset(10, 0):
      guesses = ["".join(text.split()) for text, is_action in episode.segments if is_action]
      self.assertTrue(set(guesses) <= words, guesses)
    self.assertEqual(tasks.make_task("wordle").name, "wordle")
    with self.assertRaisesRegex(ValueError, r"wordle_words=3000.*n must be an int"):
      _config(env="wordle", wordle_words=3000)
    with self.assertRaisesRegex(ValueError, "n must be an int"):
      _config(env="wordle", wordle_words=-1)
    with self.assertRaisesRegex(ValueError, "wordle_words=50 applies to env='wordle' only"):
      _config(env="maze_fo", wordle_words=50)
    with self.assertRaisesRegex(ValueError, "applies to env='wordle' only"):
      tasks.make_task("maze_fo", wordle_words=50)

  def test_config_errors_name_the_field(self):
    with self.assertRaisesRegex(ValueError, "variant"):
      _config(variant="ppo")
    with self.assertRaisesRegex(ValueError, "env"):
      _config(env="chess")
    with self.assertRaisesRegex(ValueError, "unknown Config config key.*lr_typo"):
      config_lib.from_dict(ilql.Config, {"lr_typo": 1.0})
    nested = config_lib.from_dict(bc.Config, {"model": {"d_model": 48},
                                              "train": {"mesh": [1, 1, 1]}})
    self.assertEqual(nested.model.d_model, 48)
    self.assertEqual(nested.train.mesh, (1, 1, 1))


if __name__ == "__main__":
  absltest.main()
