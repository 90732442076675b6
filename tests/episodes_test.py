"""Multi-turn rollouts: per-turn rows, GAE across turns vs a numpy loop, exact behaviour log-probs,
and PPO from BC on Maze end to end (smoke)."""

import functools
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import config as config_lib
from jaxlm import testing
from jaxlm.algos import online
from jaxlm.algos import pg
from jaxlm.algos import pg_episodes
from jaxlm.data.batch import RLBatch
from jaxlm.envs import base as envs_base
from jaxlm.envs import tasks
from jaxlm.models import lm_networks
from jaxlm.rl import episodes
from jaxlm.rl import rollout


def numpy_gae(rewards, values, last_done, bootstrap_value, gamma, lam):
  """GAE over one episode's action decisions, oldest first (Schulman et al. 2016, Eq. 16)."""
  n, adv, next_adv = len(rewards), np.zeros(len(rewards)), 0.0
  for t in reversed(range(n)):
    terminal = t == n - 1 and last_done
    v_next = 0.0 if terminal else (bootstrap_value if t == n - 1 else values[t + 1])
    a_next = 0.0 if t == n - 1 else next_adv
    adv[t] = rewards[t] + gamma * v_next - values[t] + gamma * lam * a_next
    next_adv = adv[t]
  return adv


class EpisodeGaeTest(absltest.TestCase):

  def test_matches_numpy_loop_across_turn_rows(self):
    # Rows of length 6: [ctx..., action tokens]; ep 0: turns of 1 and 2 action tokens, terminal;
    # ep 1: two 1-token turns, cut off, then its bootstrap row; then a padding row.
    t_len = 6
    rows = [  # (prompt_len, action_len, reward, done)
        (3, 1, -1.0, 0), (2, 2, 0.5, 1), (4, 1, -1.0, 0), (3, 1, -2.0, 0)]
    tokens, attn, act, rew, done = np.zeros((5, 6, t_len), np.float32)
    for i, (p, n, r, d) in enumerate(rows):
      attn[i, :p + n], act[i, p:p + n] = 1, 1
      rew[i, p + n - 1], done[i, p + n - 1] = r, d
    attn[4, :3] = 1  # bootstrap row of episode 1: context only
    bootstrap = np.array([0, 0, 0, 0, 1, 0], np.float32)
    batch = RLBatch(tokens=jnp.asarray(tokens, jnp.int32), attention_mask=attn, action_mask=act,
                    rewards=rew, dones=done)
    values = np.random.default_rng(0).normal(size=(6, t_len)).astype(np.float32)
    gamma, lam = 0.9, 0.8
    adv = np.asarray(episodes.episode_gae(jnp.asarray(values), batch, jnp.asarray(bootstrap),
                                          gamma=gamma, lambda_=lam))
    # Decision of the j-th action token of row i sits at position p + j - 1.
    decisions = lambda i: [(i, rows[i][0] + j - 1) for j in range(rows[i][1])]
    for ep_rows, last_done, boot in (([0, 1], True, 0.0), ([2, 3], False, values[4, 2])):
      pos = [d for i in ep_rows for d in decisions(i)]
      r = [rew[i, t + 1] for i, t in pos]
      v = [values[i, t] for i, t in pos]
      want = numpy_gae(r, v, last_done, boot, gamma, lam)
      np.testing.assert_allclose([adv[i, t] for i, t in pos], want, rtol=1e-5, atol=1e-6)
    mask = np.zeros_like(adv, bool)
    for i in range(4):
      for d in decisions(i):
        mask[d] = True
    np.testing.assert_array_equal(adv[~mask], 0.0)  # nothing off the action decisions

  def test_single_turn_rows_equal_per_row_gae(self):
    from jaxlm.rl.returns import batch_gae  # pylint: disable=g-import-not-at-top
    batch = testing.fake_rl_batch(batch_size=4, length=10)
    batch = batch.replace(dones=jnp.zeros_like(batch.dones).at[:, -1].set(
        batch.action_mask[:, -1]))
    values = jax.random.normal(jax.random.key(1), batch.tokens.shape)
    ends_done = np.asarray(batch.dones[:, -1]) > 0
    want = batch_gae(values, batch, gamma=0.95, lambda_=0.9)
    got = episodes.episode_gae(values, batch, jnp.ones(4), gamma=0.95, lambda_=0.9)
    np.testing.assert_allclose(np.asarray(got)[ends_done], np.asarray(want)[ends_done],
                               rtol=1e-5, atol=1e-6)


class TurnSamplerTest(absltest.TestCase):

  def test_rows_hold_the_played_turns_and_the_sampler_logprobs(self):
    task = tasks.make_task("maze_fo")
    cfg = pg.Config(model=testing.tiny_model(vocab_size=task.tokenizer.vocab_size, max_len=24),
                    group_size=1, estimator="gae", critic="head",
                    sampling=rollout.Sampling(max_new_tokens=3, temperature=1.3, top_k=40))
    sampling = pg_episodes.episode_sampling(cfg, task)
    self.assertIn(task.tokenizer.encode("move up\n")[0], sampling.stop_tokens)
    model, init_lm, logits_fn = lm_networks(cfg.model)
    params = init_lm(jax.random.key(0))
    sample = jax.jit(functools.partial(rollout.sample, model, sampling=sampling, group_size=1))
    sampler = episodes.TurnSampler(sample, params, task.tokenizer, 3, 24 - 3, 1,
                                   jax.random.key(2))
    trajs = envs_base.rollout(task.make_env, sampler, [5, 6, 7], 4, env_tags=np.arange(3))
    eb = episodes.episode_rows(sampler, trajs, 24, 3)
    n_turns = sum(len(t) for t in sampler.turns)
    n_boot = sum(not t.done for t in trajs)
    self.assertEqual(eb.rows, n_turns + n_boot)
    self.assertEqual(eb.rl.tokens.shape[0] % 3, 0)
    self.assertEqual(float(eb.bootstrap.sum()), n_boot)
    # Rewards on the rows are the trajectories' action rewards, turn by turn.
    want = [r for t in trajs for r, a in zip(t.rewards, t.is_action) if a]
    got = [eb.rl.rewards[i].sum() for i in range(eb.rows) if eb.bootstrap[i] == 0]
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(eb.returns, [t.total_return for t in trajs])
    # Each action text the env saw decodes from the row's action tokens.
    texts = [x for t in trajs for x, a in zip(t.texts, t.is_action) if a]
    rows = [i for i in range(eb.rows) if eb.bootstrap[i] == 0]
    decoded = [task.tokenizer.decode(eb.rl.tokens[i][eb.rl.action_mask[i] > 0].tolist())
               for i in rows]
    self.assertEqual(decoded, texts)
    # The trainer's teacher-forced log-probs on the rows are the sampler's (f32, 1e-5).
    logp = sampling.logprobs(logits_fn(params, eb.rl.tokens, eb.rl.attention_mask),
                             eb.rl.tokens)
    trains = np.asarray(pg.decision_view(jax.tree.map(jnp.asarray, eb.rl)).trains) > 0
    self.assertGreater(trains.sum(), n_turns - 1)
    np.testing.assert_allclose(np.asarray(logp)[trains], eb.sampler_logp[trains], atol=1e-5)

  def test_context_longer_than_the_row_is_named(self):
    task = tasks.make_task("maze_fo")
    sampler = episodes.TurnSampler(None, None, task.tokenizer, 1, 8, 1, jax.random.key(0))
    with self.assertRaisesRegex(ValueError, "episode 0, turn 0: the context has 17 tokens"):
      sampler.context(((task.make_env().reset(0), False),), 0)


class PPOMazeSmokeTest(absltest.TestCase):

  def test_bc_then_ppo_writes_both_rows(self):
    from experiments.configs import ppo as ppo_config  # pylint: disable=g-import-not-at-top
    config = config_lib.from_dict(online.Config, ppo_config.get_config("smoke").to_dict())
    with tempfile.TemporaryDirectory() as d:
      results = online.train_and_evaluate(config, d)
    self.assertEqual(set(results), {"bc", "ppo"})
    for row in results.values():
      self.assertEqual(row["episodes"], 4)
      self.assertBetween(row["return"], -400.0, 0.0)

  def test_multi_turn_needs_gae(self):
    task = tasks.make_task("maze_fo")
    cfg = pg.Config(model=testing.tiny_model(vocab_size=task.tokenizer.vocab_size), group_size=1)
    model, _, forward, logits = pg.networks(cfg)
    with self.assertRaisesRegex(ValueError, 'multi-turn.*estimator "gae"'):
      pg_episodes.EpisodeRollouts(cfg, task, model, forward, logits)

  def test_prompt_trainer_names_the_episode_trainer(self):
    task = tasks.make_task("maze_fo")
    cfg = pg.Config(model=testing.tiny_model(vocab_size=task.tokenizer.vocab_size),
                    group_size=1, estimator="gae", critic="head")
    with tempfile.TemporaryDirectory() as d:
      with self.assertRaisesRegex(TypeError, "not a PromptTask.*pg_episodes.train"):
        pg.train(cfg, task, d)


if __name__ == "__main__":
  absltest.main()
