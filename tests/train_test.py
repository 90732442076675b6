"""Optimizer schedule, gradient accumulation, Polyak targets, step metrics and the loop."""

import json
import os
import tempfile

from absl.testing import absltest, parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm import metrics
from jaxlm import train


def _loss_fn(params, batch, rng, *, state):
  """Mean squared error of a linear model: a loss whose gradient numpy can check."""
  del rng, state
  err_NxK = batch["x"] @ params["w"] + params["b"] - batch["y"]
  return jnp.mean(err_NxK ** 2), {"mean_abs_err": jnp.mean(jnp.abs(err_NxK))}


def _problem(n=8, seed=0):
  rng = np.random.default_rng(seed)
  params = {"w": rng.normal(size=(3, 2)).astype(np.float32),
            "b": rng.normal(size=(2,)).astype(np.float32)}
  batch = {"x": rng.normal(size=(n, 3)).astype(np.float32),
           "y": rng.normal(size=(n, 2)).astype(np.float32)}
  return params, batch


def _numpy_grads(params, batch):
  err = batch["x"] @ params["w"] + params["b"] - batch["y"]
  scale = 2.0 / err.size
  return {"w": scale * batch["x"].T @ err, "b": scale * err.sum(0)}


def _tree_allclose(a, b, **kw):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


class ScheduleTest(parameterized.TestCase):

  @parameterized.parameters((0, 0.0), (5, 0.5), (10, 1.0), (60, 0.55), (110, 0.1), (200, 0.1))
  def test_warmup_cosine_values(self, step, expected):
    schedule = train.make_schedule(1.0, warmup=10, total_steps=110, final_fraction=0.1)
    self.assertAlmostEqual(float(schedule(step)), expected, places=5)

  def test_bad_schedule(self):
    with self.assertRaisesRegex(ValueError, "warmup=-1"):
      train.make_schedule(1.0, -1, 10)

  def test_weight_decay_only_on_matrices_and_clipping(self):
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    opt, _ = train.make_optimizer(0.1, 0, 10, clip=1.0, weight_decay=0.5, final_fraction=1.0)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = opt.update(zero, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_allclose(updates["b"], 0.0)
    clip = optax.clip_by_global_norm(1.0)
    big = {"w": jnp.full((2, 2), 10.0), "b": jnp.zeros(2)}
    clipped, _ = clip.update(big, clip.init(big))
    self.assertAlmostEqual(float(optax.tree.norm(clipped)), 1.0, places=5)


class StepTest(parameterized.TestCase):

  def _state(self, params, opt, with_target=False):
    return train.TrainState.create(jax.tree.map(jnp.asarray, params), opt,
                                   jax.random.PRNGKey(0), with_target=with_target)

  def test_metrics_match_numpy(self):
    params, batch = _problem()
    lr = 0.05
    opt = optax.sgd(lr)
    step = train.make_train_step(_loss_fn, opt, schedule=optax.constant_schedule(lr))
    state, metrics = step(self._state(params, opt), batch)
    grads = _numpy_grads(params, batch)
    err = batch["x"] @ params["w"] + params["b"] - batch["y"]
    norm = lambda t: np.sqrt(sum(np.sum(np.square(v)) for v in t.values()))
    new = {k: params[k] - lr * grads[k] for k in params}
    _tree_allclose(state.params, new, rtol=1e-5)
    self.assertAlmostEqual(float(metrics["loss"]), float(np.mean(err ** 2)), places=5)
    self.assertAlmostEqual(float(metrics["grad_norm"]), norm(grads), places=5)
    self.assertAlmostEqual(float(metrics["update_norm"]), lr * norm(grads), places=5)
    self.assertAlmostEqual(float(metrics["param_norm"]), norm(new), places=5)
    self.assertAlmostEqual(float(metrics["learning_rate"]), lr, places=7)
    self.assertAlmostEqual(float(metrics["mean_abs_err"]), float(np.abs(err).mean()), places=5)
    self.assertEqual(int(state.step), 1)
    self.assertFalse(np.array_equal(state.rng, jax.random.PRNGKey(0)))

  @parameterized.parameters(2, 4)
  def test_grad_accumulation_equals_big_batch(self, accum):
    params, batch = _problem(n=16)
    opt, schedule = train.make_optimizer(1e-2, 0, 10)
    big = train.make_train_step(_loss_fn, opt, schedule=schedule)
    acc = train.make_train_step(_loss_fn, opt, schedule=schedule, accum_steps=accum)
    s1, m1 = big(self._state(params, opt), batch)
    s2, m2 = acc(self._state(params, opt), batch)
    _tree_allclose(s2.params, s1.params, rtol=1e-5, atol=1e-6)
    for k in ("loss", "grad_norm", "update_norm", "mean_abs_err"):
      self.assertAlmostEqual(float(m2[k]), float(m1[k]), places=5, msg=k)
    with self.assertRaisesRegex(ValueError, "not divisible by accum_steps=3"):
      train.make_train_step(_loss_fn, opt, accum_steps=3)(self._state(params, opt), batch)

  def test_gradient_noise_from_the_microbatch_gradients(self):
    params, batch = _problem(n=16)
    opt = optax.sgd(0.0)
    accum = 4
    _, metrics = train.make_train_step(_loss_fn, opt, accum_steps=accum)(
        self._state(params, opt), batch)
    flat = lambda t: np.concatenate([np.ravel(t["w"]), t["b"]])
    # Microbatch i holds rows i, i + 4, ... (the trainer's split).
    micro = [flat(_numpy_grads(params, jax.tree.map(lambda x: x[i::accum], batch)))
             for i in range(accum)]
    micro_sq = np.mean([g @ g for g in micro])
    mean = np.mean(micro, 0)
    self.assertAlmostEqual(float(metrics["grad_signal_sq"]),
                           (accum * mean @ mean - micro_sq) / (accum - 1), places=4)
    self.assertAlmostEqual(float(metrics["grad_noise_sq"]),
                           (micro_sq - mean @ mean) / (accum - 1), places=4)
    _, single = train.make_train_step(_loss_fn, opt)(self._state(params, opt), batch)
    self.assertNotIn("grad_noise_sq", single)

  def test_gradient_noise_estimates_are_unbiased(self):
    # Per-row loss w . x_r with x_r = mu + s * eps_r: the per-row gradient is x_r, so the true
    # gradient is mu (|G|^2 = |mu|^2) and a batch of B rows has noise tr(Sigma) / B = d s^2 / B.
    d, rows, s, steps = 5, 32, 2.0, 400
    mu = np.arange(1.0, d + 1.0, dtype=np.float32) / d
    loss_fn = lambda p, b, rng, *, state: (jnp.mean(b["x"] @ p["w"]), {})
    opt = optax.sgd(0.0)
    step = jax.jit(train.make_train_step(loss_fn, opt, accum_steps=4, donate=False))
    state = self._state({"w": np.zeros(d, np.float32)}, opt)
    rng = np.random.default_rng(0)
    signal, noise = [], []
    for _ in range(steps):
      x = mu + s * rng.standard_normal((rows, d)).astype(np.float32)
      _, m = step(state, {"x": x})
      signal.append(float(m["grad_signal_sq"]))
      noise.append(float(m["grad_noise_sq"]))
    # |mu|^2 = 2.2, noise 0.625; standard errors over 400 steps ~0.06 and ~0.011. The plain
    # |g|^2 would average 2.2 + 0.625 = 2.825, outside the signal's bound.
    self.assertAlmostEqual(np.mean(signal), mu @ mu, delta=0.25)
    self.assertAlmostEqual(np.mean(noise), d * s ** 2 / rows, delta=0.05)

  def test_polyak_target_update(self):
    params, batch = _problem()
    opt = optax.sgd(0.1)
    tau = 0.25
    step = train.make_train_step(_loss_fn, opt, target_update=tau)
    state = self._state(params, opt, with_target=True)
    target0 = jax.tree.map(lambda p: p + 1.0, state.params)  # Distinct from params.
    state = state.replace(target_params=target0)
    target0 = jax.device_get(target0)  # The step donates (deletes) the device copy.
    new_state, _ = step(state, batch)
    expected = jax.tree.map(lambda t, p: (1 - tau) * t + tau * np.asarray(p),
                            target0, new_state.params)
    _tree_allclose(new_state.target_params, expected, rtol=1e-6)
    with self.assertRaisesRegex(ValueError, "tau"):
      train.make_train_step(_loss_fn, opt, target_update=1.5)

  def test_state_is_donated(self):
    params, batch = _problem()
    opt = optax.sgd(0.1)
    step = train.make_train_step(_loss_fn, opt)
    state = self._state(params, opt)
    step(state, batch)
    self.assertTrue(state.params["w"].is_deleted())


class _Data:

  def __init__(self):
    self.i = 0

  def __next__(self):
    self.i += 1
    return _problem(seed=self.i)[1]

  def get_state(self):
    return {"i": self.i}


class LoopTest(absltest.TestCase):

  def test_loop_writes_metrics_tensorboard_and_plot(self):
    params, _ = _problem()
    opt, schedule = train.make_optimizer(1e-2, 2, 6)
    step = train.make_train_step(_loss_fn, opt, schedule=schedule)
    state = train.TrainState.create(jax.tree.map(jnp.asarray, params), opt,
                                    jax.random.PRNGKey(0))
    eval_fn = lambda s: {"loss": float(s.step)}
    with tempfile.TemporaryDirectory() as workdir:
      state, history = train.train(state, step, _Data(), num_steps=6, workdir=workdir,
                                   log_every=2, eval_every=3, eval_fn=eval_fn,
                                   tokens_per_batch=lambda b: b["x"].shape[0],
                                   transfer_guard="disallow", progress=False)
      rows = metrics.read_metrics(workdir)
      self.assertTrue(os.path.exists(os.path.join(workdir, "learning_curve.png")))
      self.assertTrue(os.listdir(os.path.join(workdir, "tb")))
    self.assertEqual(int(state.step), 6)
    self.assertEqual(rows, json.loads(json.dumps(history)))
    self.assertEqual([r["step"] for r in rows if "loss" in r], [2, 4, 6])
    self.assertEqual([(r["step"], r["eval/loss"]) for r in rows if "eval/loss" in r],
                     [(0, 0.0), (3, 3.0), (6, 6.0)])
    for key in ("grad_norm", "param_norm", "update_norm", "learning_rate", "tokens_per_s"):
      self.assertIn(key, rows[1])
    self.assertGreater(rows[1]["tokens_per_s"], 0)


if __name__ == "__main__":
  absltest.main()
