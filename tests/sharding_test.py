"""Sharded training on 8 fake CPU devices equals single-device training; multi-process mesh."""

import functools
import json
import os
import socket
import subprocess
import sys

from absl.testing import absltest, parameterized
import jax
from jax.sharding import PartitionSpec as P
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm import distributed, sharding, train
from jaxlm.models import Transformer, TransformerConfig

# 8 fake CPU devices (4 in each multi-process worker); must run before jax picks a backend.
try:
  jax.config.update("jax_num_cpu_devices", 4 if "--worker" in sys.argv else 8)
except RuntimeError:
  pass  # Backend already initialised by an earlier test module: setUpModule skips.

CFG = TransformerConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=4, d_ff=32, max_len=16)
BATCH, SEQ = 8, 8


def setUpModule():
  if jax.device_count() < 8:
    raise absltest.SkipTest(
        f"needs 8 CPU devices, have {jax.device_count()}: jax was initialised before this file "
        "set jax_num_cpu_devices=8; run the file on its own")


def _loss_fn(model):
  def loss_fn(params, batch, rng, *, state):
    del rng, state
    logits = model.apply({"params": params}, batch["inputs"]).logits
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean(), {}
  return loss_fn


def _batch(seed=0):
  tokens = np.random.default_rng(seed).integers(0, CFG.vocab_size, (BATCH, SEQ + 1))
  return {"inputs": tokens[:, :-1].astype(np.int32), "targets": tokens[:, 1:].astype(np.int32)}


def _setup(mesh, cfg=CFG):
  """(state, shardings, step) on `mesh`; identical init on every mesh."""
  model = Transformer(cfg)
  optimizer, schedule = train.make_optimizer(1e-2, 0, 10)

  def init_fn(key):
    params = model.init(key, jnp.zeros((1, SEQ), jnp.int32))["params"]
    return train.TrainState.create(params, optimizer, jax.random.PRNGKey(1))

  state, shardings = sharding.init_sharded(init_fn, mesh, jax.random.PRNGKey(0))
  step = train.make_train_step(_loss_fn(model), optimizer, schedule=schedule, mesh=mesh,
                               state_shardings=shardings)
  return state, shardings, step


@functools.cache
def _single_device_run():
  one = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  return _run(one, lambda b: sharding.shard_batch(b, one))


def _run(mesh, put, num_steps=2):
  state, _, step = _setup(mesh)
  losses = []
  for i in range(num_steps):
    state, metrics = step(state, put(_batch(i)))
    losses.append(float(metrics["loss"]))
  return losses, state


class ShardingTest(parameterized.TestCase):

  def test_mesh_2x2x2_matches_single_device(self):
    mesh = sharding.make_mesh(2, 2, 2)
    losses1, state1 = _single_device_run()
    losses8, state8 = _run(mesh, lambda b: sharding.shard_batch(b, mesh))
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    # Parameters are really split: embedding [V, D] over (tensor, fsdp), MLP over tensor.
    emb = state8.params["embed"]["embedding"]
    self.assertEqual(emb.sharding.spec, P("tensor", "fsdp"))
    self.assertEqual(emb.addressable_shards[0].data.shape, (CFG.vocab_size // 2, CFG.d_model // 2))
    up = state8.params["block_0"]["mlp"]["up"]["kernel"]
    self.assertEqual(up.addressable_shards[0].data.shape, (CFG.d_model // 2, CFG.d_ff // 2))
    mu = state8.opt_state[1][0].mu["embed"]["embedding"]  # Adam moments sharded like params.
    self.assertEqual(mu.sharding.spec, P("tensor", "fsdp"))

  def test_make_mesh_fill_and_errors(self):
    self.assertEqual(dict(sharding.make_mesh(-1, 2, 1).shape),
                     {"data": 4, "fsdp": 2, "tensor": 1})
    self.assertEqual(dict(sharding.make_mesh(2, -1, 2).shape)["fsdp"], 2)
    with self.assertRaisesRegex(ValueError, "at most one"):
      sharding.make_mesh(-1, -1)
    with self.assertRaisesRegex(ValueError, "not divisible"):
      sharding.make_mesh(-1, 3)
    with self.assertRaisesRegex(ValueError, "needs 4 devices"):
      sharding.make_mesh(2, 2, 1)

  def test_uneven_dim_is_replicated_with_warning(self):
    mesh = sharding.make_mesh(2, 2, 2)
    with self.assertLogs(level="WARNING") as logs:
      spec = sharding.logical_to_spec(("vocab", "embed"), (33, 16), mesh, what="embedding")
    self.assertEqual(spec, P(None, "fsdp"))
    self.assertIn("embedding: dim 0 (vocab, size 33)", "".join(logs.output))
    cfg = CFG.replace(vocab_size=33)
    params = Transformer(cfg).init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))
    placed = sharding.shard_params(params["params"], mesh)
    self.assertEqual(placed["embed"]["embedding"].sharding.spec, P(None, "fsdp"))

  def test_rules_from_config(self):
    rules = sharding.rules_from_config({"embed": None, "batch": ["data", "fsdp"]})
    self.assertEqual(rules, (("embed", None), ("batch", ("data", "fsdp"))))
    with self.assertRaisesRegex(ValueError, "'mlp' uses unknown mesh axes \\['model'\\]"):
      sharding.rules_from_config({"mlp": "model"})
    mesh = sharding.make_mesh(2, 2, 2)
    with self.assertRaisesRegex(ValueError, "logical axis 'embed' .* no sharding rule"):
      sharding.logical_to_spec(("embed",), (16,), mesh, (("vocab", None),))

  def test_shard_batch_bad_leading_dim(self):
    mesh = sharding.make_mesh(2, 2, 2)
    with self.assertRaisesRegex(ValueError, "batch\\['x'\\] has shape \\(6, 2\\)"):
      sharding.shard_batch({"x": np.zeros((6, 2))}, mesh)

  def test_maybe_initialize_noop_and_errors(self):
    self.assertFalse(distributed.maybe_initialize())
    with self.assertRaisesRegex(ValueError, "without a coordinator"):
      distributed.maybe_initialize(num_processes=2, process_id=1)
    with self.assertRaisesRegex(ValueError, "all three are required"):
      distributed.maybe_initialize(coordinator_address="127.0.0.1:1")

  def test_two_processes_form_one_global_mesh(self):
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      port = s.getsockname()[1]
    procs = []
    for pid in range(2):  # Each worker has 4 CPU devices (see the top of this file).
      env = {**os.environ, "JAXLM_COORDINATOR": f"127.0.0.1:{port}", "JAXLM_NUM_PROCESSES": "2",
             "JAXLM_PROCESS_ID": str(pid), "PYTHONPATH": os.getcwd()}
      procs.append(subprocess.Popen([sys.executable, __file__, "--worker"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
      try:
        out, err = p.communicate(timeout=120)
      except subprocess.TimeoutExpired:
        for q in procs:
          q.kill()
        self.fail("multi-process worker timed out")
      self.assertEqual(p.returncode, 0, msg=err[-3000:])
      outs.append(json.loads(out.strip().splitlines()[-1]))
    expected, _ = _single_device_run()
    for o in outs:
      self.assertEqual(o["devices"], 8)
      np.testing.assert_allclose(o["losses"], expected, rtol=1e-5, atol=1e-5)


def _worker():
  """One of two processes: join the 8-device mesh, feed our half of each batch."""
  assert distributed.maybe_initialize()
  mesh = sharding.make_mesh(2, 2, 2)
  rows = distributed.process_slice(BATCH)
  put = lambda b: distributed.host_local_to_global(jax.tree.map(lambda x: x[rows], b), mesh)
  losses, _ = _run(mesh, put)
  print(json.dumps({"devices": jax.device_count(), "losses": losses}), flush=True)
  jax.distributed.shutdown()


if __name__ == "__main__":
  if "--worker" in sys.argv:
    _worker()
  else:
    absltest.main()
