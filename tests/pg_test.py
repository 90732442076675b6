"""Online policy-gradient RL (jaxlm.algos.pg) end to end on the prompt -> 3-token bandit."""

import dataclasses
import functools
import json
import os
import shutil
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs import grpo as grpo_configs
from jaxlm import config as config_lib
from jaxlm import sharding
from jaxlm import testing
from jaxlm import train as train_lib
from jaxlm.algos import online
from jaxlm.algos import pg
from jaxlm.envs import bandit
from jaxlm.rl import advantages
from jaxlm.rl import rollout
from jaxlm.rl import selection

TASK = bandit.task()
MODEL = testing.tiny_model(vocab_size=bandit.vocab_size(), max_len=8)


def _config(**kw):
  train = testing.tiny_train(**{"batch_size": 32, "lr": 3e-3, "warmup": 0,
                                **kw.pop("train", {})})
  base = dict(model=MODEL, train=train, group_size=8, sampling=rollout.Sampling(max_new_tokens=3),
              eval_samples=4)
  return pg.Config(**{**base, **kw})


def _batch(config, params, index=0):
  """One rollout batch of `config` from `params` (prepared for the loss)."""
  model, _, forward, policy_logits = pg.networks(config)
  rollouts = pg.Rollouts(config, TASK, model, forward, policy_logits)
  rollouts.index = index
  extra = params["policy"] if config.kl_coef > 0 else None
  state = train_lib.TrainState(step=0, params=params, opt_state=None, rng=None, extra=extra)
  return pg.prepare_batch(config, rollouts(state)), forward


class LossTest(parameterized.TestCase):

  @parameterized.product(estimator=["grpo", "rloo", "gae"],
                         aggregation=["seq_mean_token_mean", "token_mean", "seq_sum_constant"])
  def test_first_iteration_is_on_policy_reinforce(self, estimator, aggregation):
    config = _config(estimator=estimator, aggregation=aggregation,
                     critic="head" if estimator == "gae" else "none")
    params = pg.networks(config)[1](jax.random.key(0))
    batch, forward = _batch(config, params)
    loss_fn = pg.make_loss(config, forward)
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, None,
                                                                     state=None)
    self.assertAlmostEqual(float(metrics["ratio_min"]), 1.0, delta=1e-5)
    self.assertAlmostEqual(float(metrics["ratio_max"]), 1.0, delta=1e-5)
    self.assertEqual(float(metrics["clip_frac"]), 0.0)
    self.assertLessEqual(float(metrics["sampler_gap"]), 1e-5)

    # REINFORCE: -sum_bt w_bt A_bt log pi(a_bt), weights of the aggregation mode.
    def reinforce(policy_params):
      logits, _ = forward({**params, "policy": policy_params}, batch.rl.tokens,
                          batch.rl.attention_mask)
      logp = config.sampling.logprobs(logits, batch.rl.tokens)
      mask = pg.decision_view(batch.rl).trains
      return pg.pg_losses.aggregate(-batch.advantages * logp, mask, aggregation,
                                    jnp.sum(batch.norm_share))

    expected = jax.grad(reinforce)(params["policy"])
    for got, want in zip(jax.tree.leaves(grads["policy"]), jax.tree.leaves(expected)):
      if estimator != "gae":  # with a shared trunk the value loss adds its own gradient
        np.testing.assert_allclose(got, want, atol=1e-6)
    self.assertGreater(float(jnp.abs(jax.tree.leaves(expected)[0]).max()), 0.0)

  def test_fused_loss_equals_the_logits_path(self):
    # Entropy bonus, KL in the loss, a value head on the trunk and temperature 0.8: every term
    # that reads the policy's log-probs or entropies, fused (no [B, T, V] logits) and plain.
    kw = dict(estimator="gae", critic="head", entropy_coef=0.05, kl_coef=0.1,
              sampling=rollout.Sampling(max_new_tokens=3, temperature=0.8))
    fused, plain = _config(**kw), _config(fused_xent=False, **kw)
    params = pg.networks(fused)[1](jax.random.key(1))
    batch, forward = _batch(fused, params)
    out = [jax.value_and_grad(pg.make_loss(c, forward), has_aux=True)(params, batch, None,
                                                                       state=None)
           for c in (fused, plain)]
    (loss_f, metrics_f), grads_f = out[0]
    (loss_p, metrics_p), grads_p = out[1]
    np.testing.assert_allclose(loss_f, loss_p, rtol=1e-5)
    for key in ("entropy", "kl", "kl_loss", "clip_frac"):
      np.testing.assert_allclose(metrics_f[key], metrics_p[key], rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(grads_f), jax.tree.leaves(grads_p)):
      np.testing.assert_allclose(a, b, atol=1e-6)
    self.assertGreater(float(metrics_f["entropy"]), 0.1)
    # A top-k filter needs the full logits: the same config then takes the plain path.
    topk = _config(sampling=rollout.Sampling(max_new_tokens=3, top_k=2))
    jaxpr = str(jax.make_jaxpr(lambda p: pg.make_loss(topk, forward)(p, batch, None,
                                                                      state=None))(params))
    self.assertNotIn("custom_vjp_call", jaxpr)

  def test_zero_variance_groups_give_zero_advantage_and_can_be_dropped(self):
    config = _config(drop_zero_variance=True)
    params = pg.networks(config)[1](jax.random.key(0))
    batch, _ = _batch(config, params)
    zero = np.asarray(batch.zero_var) > 0
    rewards = np.asarray(batch.reward).reshape(-1, 8)
    np.testing.assert_array_equal(zero.reshape(-1, 8)[:, 0], rewards.min(1) == rewards.max(1))
    loss_mask = np.asarray(batch.rl.loss_mask)
    self.assertTrue(np.all(loss_mask[zero] == 0))
    self.assertTrue(np.all(np.asarray(batch.advantages)[zero] == 0))
    self.assertTrue(np.all(np.isfinite(np.asarray(batch.advantages))))

  def test_mask_truncated_drops_completions_cut_by_the_budget(self):
    # Symbol FIRST as a stop token: some completions end before the 3-token budget.
    task = dataclasses.replace(TASK, stop_tokens=(bandit.FIRST,))
    batches = []
    for mask in (False, True):
      config = _config(mask_truncated=mask)
      model, init, forward, policy_logits = pg.networks(config)
      params = init(jax.random.key(0))
      state = train_lib.TrainState(step=0, params=params, opt_state=None, rng=None, extra=None)
      batches.append(pg.Rollouts(config, task, model, forward, policy_logits)(state))
    plain, masked = batches
    actions = np.asarray(plain.rl.tokens) * np.asarray(plain.rl.action_mask)
    cut = ~np.any(actions == bandit.FIRST, axis=1)
    self.assertTrue(0 < cut.sum() < len(cut))
    np.testing.assert_array_equal(np.asarray(masked.rl.tokens), np.asarray(plain.rl.tokens))
    np.testing.assert_array_equal(np.asarray(masked.rl.loss_mask)[cut], 0.0)
    np.testing.assert_array_equal(np.asarray(masked.rl.loss_mask)[~cut],
                                  np.asarray(plain.rl.loss_mask)[~cut])
    np.testing.assert_array_equal(masked.advantages, plain.advantages)  # same baselines

  def test_oversampling_keeps_the_first_varying_groups_of_the_draw(self):
    # The same seed and rollout index with twice the batch and oversample 1 draws the same
    # prompts and completions; oversample 2 must keep exactly fill_groups' rows of them.
    # At temperature 0.1 the random init gives 2 varying groups of the 8 drawn: the batch of
    # 4 holds both, then the first two zero-variance groups.
    cold = rollout.Sampling(max_new_tokens=3, temperature=0.1)
    config = _config(oversample=2, drop_zero_variance=True, sampling=cold)
    params = pg.networks(config)[1](jax.random.key(0))
    batch, _ = _batch(config, params)
    drawn, _ = _batch(_config(train={"batch_size": 64}, sampling=cold), params)
    rewards_KxG = np.asarray(drawn.reward).reshape(-1, 8)
    keep = np.asarray(advantages.fill_groups(rewards_KxG, 4))
    rows = (keep[:, None] * 8 + np.arange(8)).reshape(-1)
    np.testing.assert_array_equal(batch.rl.tokens, np.asarray(drawn.rl.tokens)[rows])
    np.testing.assert_array_equal(batch.reward, np.asarray(drawn.reward)[rows])
    zero_drawn = np.asarray(advantages.zero_variance_groups(rewards_KxG))
    np.testing.assert_array_equal(zero_drawn.astype(int), [0, 1, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(keep, [0, 2, 1, 3])
    np.testing.assert_array_equal(np.asarray(batch.zero_var).reshape(-1, 8)[:, 0], [0, 0, 1, 1])
    self.assertTrue(np.all(np.asarray(batch.rl.loss_mask)[16:] == 0))
    with self.assertRaisesRegex(ValueError, "oversample.*group estimator"):
      _config(oversample=2, estimator="gae", critic="head")

  @parameterized.parameters("head", "separate")
  def test_the_critic_trains(self, critic):
    config = _config(estimator="gae", critic=critic)
    params = pg.networks(config)[1](jax.random.key(0))
    batch, forward = _batch(config, params)
    optimizer = train_lib.make_optimizer(1e-3, 0, 10)[0]
    step = train_lib.make_train_step(pg.make_loss(config, forward), optimizer, donate=False)
    state = train_lib.TrainState.create(params, optimizer, jax.random.key(0))
    new, metrics = step(state, batch)
    self.assertGreater(float(metrics["vf_loss"]), 0.0)
    for before, after in zip(jax.tree.leaves(params["value"]["head"]),
                             jax.tree.leaves(new.params["value"]["head"])):
      self.assertGreater(float(jnp.abs(after - before).max()), 0.0)
    if critic == "separate":  # its own trunk moves too, and only the value loss moves it
      moved = [float(jnp.abs(a - b).max()) for a, b in
               zip(jax.tree.leaves(params["value"]["trunk"]),
                   jax.tree.leaves(new.params["value"]["trunk"]))]
      self.assertGreater(max(moved), 0.0)

  def test_gradient_is_the_same_for_1_2_4_microbatches(self):
    config = _config(estimator="grpo", aggregation="token_mean")
    params = pg.networks(config)[1](jax.random.key(0))
    _, forward = _batch(config, params)
    raw, _ = _batch(config, params)
    loss_fn = pg.make_loss(config, forward)
    optimizer = optax.sgd(1.0)  # new params = params - gradient
    results = []
    for accum in (1, 2, 4):
      step = train_lib.make_train_step(loss_fn, optimizer, accum_steps=accum, donate=False,
                                       prepare_batch=functools.partial(pg.prepare_batch, config))
      state = train_lib.TrainState.create(params, optimizer, jax.random.key(0))
      results.append(jax.tree.map(jnp.subtract, params, step(state, raw)[0].params))
    for other in results[1:]:
      for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(other)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    self.assertGreater(max(float(jnp.abs(g).max()) for g in jax.tree.leaves(results[0])), 1e-3)

  def test_update_is_the_same_on_a_2x2x2_mesh(self):
    # PPO with a separate critic, a KL reference in `extra`, 2 minibatches x 2 micro-batches:
    # the sharded step (params over fsdp/tensor, rows over data/fsdp) moves the params as the
    # one-device step does.
    config = _config(estimator="gae", critic="separate", kl_coef=0.05, minibatches=2,
                     train={"accum_steps": 2})
    params = pg.networks(config)[1](jax.random.key(0))
    raw, forward = _batch(config, params)
    optimizer = optax.sgd(1.0)
    make = functools.partial(train_lib.make_train_step, pg.make_loss(config, forward), optimizer,
                             accum_steps=2, minibatches=2, donate=False,
                             prepare_batch=functools.partial(pg.prepare_batch, config))
    state_fn = lambda key: train_lib.TrainState.create(params, optimizer, key,
                                                       extra=params["policy"])
    single = make()(state_fn(jax.random.key(1)), raw)[0].params
    mesh = sharding.make_mesh(2, 2, 2)
    state, shardings = sharding.init_sharded(state_fn, mesh, jax.random.key(1))
    sharded = make(mesh=mesh, state_shardings=shardings)(
        state, sharding.shard_batch(raw, mesh))[0].params
    self.assertTrue(any(not leaf.sharding.is_fully_replicated
                        for leaf in jax.tree.leaves(state.params)))
    moved = []
    for p, a, b in zip(jax.tree.leaves(params), jax.tree.leaves(single), jax.tree.leaves(sharded)):
      np.testing.assert_allclose(a - p, b - p, atol=1e-6)
      moved.append(float(jnp.abs(a - p).max()))
    self.assertGreater(max(moved), 1e-3)

  def test_epoch_prompt_order_visits_every_prompt_once_per_pass(self):
    config = _config(prompt_order="epochs", train={"batch_size": 24})  # P = 3 prompts a step
    model, _, forward, policy_logits = pg.networks(config)
    rollouts = pg.Rollouts(config, bandit.task(num_prompts=5), model, forward, policy_logits)
    drawn = []
    for i in range(1, 6):  # 15 draws = 3 passes over 5 prompts
      rollouts.index = i
      drawn.append(rollouts._prompts(np.random.default_rng(0)))
    drawn = np.concatenate(drawn)
    for k in range(3):
      self.assertEqual(sorted(drawn[5 * k:5 * k + 5]), [0, 1, 2, 3, 4])
    rollouts.index = 2
    np.testing.assert_array_equal(rollouts._prompts(None), drawn[3:6])  # a function of index

  def test_config_errors_name_the_field(self):
    with self.assertRaisesRegex(ValueError, "gae.*critic"):
      _config(estimator="gae")
    with self.assertRaisesRegex(ValueError, "group_size"):
      _config(group_size=5)
    with self.assertRaisesRegex(ValueError, "estimator"):
      _config(estimator="ppo2")


class PromptFilterTest(absltest.TestCase):
  """GRESO's pre-rollout filter (`prompt_filter="greso"`) in pg's rollouts."""

  # 12 prompts: 0-3 always solved, 4-7 never, 8-11 solved when the first completion token is
  # even (a random policy's group of 8 varies w.p. ~0.99). A third of uniform draws vary.
  TASK = dataclasses.replace(
      bandit.task(num_prompts=12),
      reward=lambda split, i, ids: 1.0 if i < 4 else 0.0 if i < 8 else float(ids[0] % 2 == 0))

  def _rollouts(self, **kw):
    config = _config(train={"batch_size": 32}, **kw)  # P = 4 prompts a step
    model, init, forward, policy_logits = pg.networks(config)
    state = train_lib.TrainState(step=0, params=init(jax.random.key(0)), opt_state=None,
                                 rng=None, extra=None)
    return pg.Rollouts(config, self.TASK, model, forward, policy_logits), state

  def test_greso_draws_more_varying_groups(self):
    varying = {}
    for name in ("none", "greso"):
      rollouts, state = self._rollouts(prompt_filter=name)
      stats = []
      for _ in range(40):
        batch = rollouts(state)
        stats.append(rollouts.pop_stats())
      # drawn_* describe the draw: here (oversample 1) the batch itself.
      np.testing.assert_allclose(stats[-1]["drawn_reward"], np.mean(batch.reward), rtol=1e-6)
      zero = np.asarray(batch.zero_var).reshape(-1, 8)[:, 0]
      self.assertAlmostEqual(stats[-1]["drawn_zero_variance_share"], zero.mean())
      self.assertGreater(stats[-1]["rollout_s"], 0)
      varying[name] = 1 - np.mean([r["drawn_zero_variance_share"] for r in stats[20:]])
      if name == "greso":
        # ~half the candidates skipped (measured 0.2-0.56 a step), the rest mostly varying.
        self.assertGreater(np.mean([r["skipped_share"] for r in stats[20:]]), 0.3)
    self.assertAlmostEqual(varying["none"], 1 / 3, delta=0.12)  # measured 0.30
    self.assertGreater(varying["greso"], 0.7)  # measured 0.85

  def test_adaptive_oversample_draws_for_the_last_zero_variance_share(self):
    rollouts, _ = self._rollouts(oversample=3, adaptive_oversample=True)  # P = 4, at most 12
    for share, want in ((None, 12), (0.5, 10), (0.0, 5), (0.6, 12), (0.9, 12), (1.0, 12)):
      rollouts._zero_share = share  # 1.25 P / (1 - z), rounded up, within [4, 12]
      self.assertEqual(rollouts.draw_count(), want, share)
    big = selection.PromptDraws(_config(oversample=4, adaptive_oversample=True,
                                 train={"batch_size": 128}), 12)  # P = 16: multiples of 4
    big._zero_share = 0.3  # 28.6 -> 32
    self.assertEqual(big.draw_count(), 32)
    with self.assertRaisesRegex(ValueError, "adaptive_oversample needs oversample > 1"):
      _config(adaptive_oversample=True)

  def test_greso_with_adaptive_oversample_draws_fewer_prompts(self):
    drawn, kept_varying = {}, {}
    for name in ("none", "greso"):
      rollouts, state = self._rollouts(prompt_filter=name, oversample=3,
                                       adaptive_oversample=True)
      stats, varying = [], []
      for _ in range(30):
        batch = rollouts(state)
        stats.append(rollouts.pop_stats())
        self.assertEqual(batch.rl.tokens.shape[0], 32)  # always P x G rows
        varying.append(1 - np.asarray(batch.zero_var).reshape(-1, 8)[:, 0].mean())
      self.assertEqual(stats[0]["drawn_prompts"], 12)
      drawn[name] = np.mean([r["drawn_prompts"] for r in stats[15:]])
      kept_varying[name] = np.mean(varying[15:])
    # Two thirds of unfiltered draws are zero-variance: the draw stays near its cap of 12
    # (measured 11.2). The filter's draws mostly vary, so the draw shrinks towards 1.25 P = 5
    # (measured 5.6) and the kept groups still vary (measured: all of them).
    self.assertGreater(drawn["none"], 10)
    self.assertLess(drawn["greso"], 8)
    self.assertGreaterEqual(kept_varying["greso"], 0.9)

  def test_filter_state_resumes_the_same_draws(self):
    rollouts, state = self._rollouts(prompt_filter="greso")
    for _ in range(6):
      rollouts(state)
    saved = json.loads(json.dumps(rollouts.get_state()))  # as the checkpoint stores it
    after = [np.asarray(rollouts(state).rl.tokens) for _ in range(3)]
    fresh, _ = self._rollouts(prompt_filter="greso")
    fresh.set_state(saved)
    for want in after:
      np.testing.assert_array_equal(np.asarray(fresh(state).rl.tokens), want)
    plain, _ = self._rollouts()
    with self.assertRaisesRegex(ValueError, "no 'filter'"):
      fresh.set_state(plain.get_state())

  def test_config_errors(self):
    with self.assertRaisesRegex(ValueError, 'greso.*"uniform"'):
      _config(prompt_filter="greso", prompt_order="epochs")
    with self.assertRaisesRegex(ValueError, "filter_target"):
      _config(prompt_filter="greso", filter_target=1.5)


class TrainTest(parameterized.TestCase):

  def test_twenty_steps_twice_give_bit_identical_metrics(self):
    config = _config(train={"num_steps": 20, "log_every": 5}, epochs=2, minibatches=2,
                     kl_coef=0.05)
    runs = []
    for _ in range(2):
      with tempfile.TemporaryDirectory() as d:
        runs.append(pg.train(config, TASK, d)[1])
    timing = ("tokens_per_s", "rollout_s")
    strip = lambda h: [{k: v for k, v in r.items() if k not in timing} for r in h]
    self.assertEqual(strip(runs[0]), strip(runs[1]))
    self.assertGreater(len([r for r in runs[0] if "kl" in r]), 3)

  def test_killed_run_resumes_bit_identically(self):
    config = _config(estimator="gae", critic="head", kl_coef=0.05)
    with tempfile.TemporaryDirectory() as straight_dir, tempfile.TemporaryDirectory() as d:
      straight, _ = pg.train(config, TASK, straight_dir)
      with testing.killed_at(pg.Rollouts, 4, method="__call__"):
        with self.assertRaises(testing.Interrupt):
          pg.train(config, TASK, d)
      resumed, _ = pg.train(config, TASK, d, resume=True)
      self.assertEqual(int(resumed.step), 6)
      for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
      with open(os.path.join(d, "metrics.jsonl")) as f:
        self.assertIn("reward", json.loads(f.readline()) | json.loads(f.readline()))
      self.assertTrue(os.path.exists(os.path.join(d, "learning_curve.png")))
      self.assertTrue(os.path.exists(os.path.join(d, "length_curve.png")))


class PairedEvaluationTest(absltest.TestCase):

  def test_gain_is_paired_with_the_step_0_outcomes(self):
    outcomes = iter([[1, 0, 0, 1, 0], [1, 1, 0, 1, 1], [1, 0]])
    d = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, d)
    evaluate = pg.paired_evaluation(lambda p: {"accuracy": p, "solved": next(outcomes)}, d)
    first = evaluate(0.4)
    self.assertEqual(first, {"accuracy": 0.4, "gain": 0.0, "gain_ci95": 0.0})
    second = evaluate(0.8)
    # Differences [0, 1, 0, 0, 1]: mean 0.4, sd sqrt(0.3), t(0.975, 4) = 2.776445.
    self.assertAlmostEqual(second["gain"], 0.4)
    self.assertAlmostEqual(second["gain_ci95"], 2.776445 * np.sqrt(0.3 / 5), places=5)
    with self.assertRaisesRegex(ValueError, "holds 5 outcomes, the evaluation gave 2"):
      evaluate(0.5)

  def test_a_run_without_its_start_outcomes_reports_no_gain(self):
    d = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, d)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:  # evaluated before, at step 0
      f.write(json.dumps({"step": 0, "eval/accuracy": 0.5}) + "\n")
    evaluate = pg.paired_evaluation(lambda p: {"accuracy": 0.5, "solved": [1, 0]}, d)
    self.assertEqual(evaluate(None), {"accuracy": 0.5})
    self.assertFalse(os.path.exists(os.path.join(d, "eval_start.json")))


class BanditLearningTest(parameterized.TestCase):
  """The bandit preset of experiments/configs/grpo.py learns (400 rollouts, ~20 s each)."""

  @parameterized.named_parameters(("grpo_kl", "grpo", 0.05, 0.1), ("ppo", "gae", 0.0, 0.1),
                                  ("dr_grpo", "dr_grpo", 0.0, 0.03))
  def test_reaches_reward_0_9(self, estimator, kl_coef, entropy_coef):
    # entropy_coef: 0.03 for the un-normalised advantages of dr_grpo (the config's docstring).
    c = grpo_configs.get_config("bandit")
    c.rl.update(estimator=estimator, kl_coef=kl_coef, entropy_coef=entropy_coef,
                critic="head" if estimator == "gae" else "none")
    config = config_lib.from_dict(online.Config, c.to_dict())
    with tempfile.TemporaryDirectory() as d:
      results = online.train_and_evaluate(config, d)
      history = [json.loads(line) for line in open(os.path.join(d, "bandit", "metrics.jsonl"))]
    # results.json holds the run's own step-0 and final evaluations (not evaluated again).
    evals = [{k[5:]: v for k, v in r.items() if k.startswith("eval/")} for r in history
             if "eval/reward" in r]
    self.assertEqual((results["sft"], results["bandit"]), (evals[0], evals[-1]))
    self.assertLess(results["sft"]["reward"], 0.4)  # random init: ~1/6 per token
    self.assertGreaterEqual(results["bandit"]["reward"], 0.9)
    if kl_coef:
      kls = [r["kl"] for r in history if "kl" in r]
      self.assertLess(max(kls), 3.0)


if __name__ == "__main__":
  absltest.main()
