"""Train state, optimizer, one jitted (sharded, donated) update step, and the training loop.

The step is built once by `make_train_step(loss_fn, optimizer, ...)` from a pure loss

    loss_fn(params, batch, rng, *, state) -> (loss, aux)

where `loss` is a float32 scalar, `aux` a dict of scalar metrics (may be empty) and `state` the
whole `TrainState` (read-only: target params, `extra`). Gradient accumulation scans over
microbatches inside the step, so one call is one optimizer update (one step of the schedule).
The update is AdamW (Loshchilov & Hutter 2019) after global-norm clipping (Pascanu et al. 2013),
with linear warmup and cosine decay (Loshchilov & Hutter 2017). Algorithms with target networks
get a Polyak average target <- (1 - tau) * target + tau * params (Lillicrap et al. 2016, Alg. 1).

`train` runs the loop: progress bar with rate/ETA, periodic eval, JSONL + TensorBoard metrics,
checkpoints every K steps (resume is bit-identical: the rng lives in the state, the data position
is checkpointed), and a learning-curve PNG at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
import contextlib
import math
import os
import sys
import time
from typing import Any

from absl import logging
import flax.struct
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from jaxlm import checkpoint as checkpoint_lib
from jaxlm import metrics as metrics_lib
from jaxlm import plots
from jaxlm import sharding as sharding_lib
from jaxlm.config import TrainConfig

Batch = Any
Metrics = dict[str, Any]
LossFn = Callable[..., tuple[jax.Array, Metrics]]


@flax.struct.dataclass
class TrainState:
  """Everything a training run needs to continue bit-identically.

  Attributes:
    step: int32 scalar, number of updates applied.
    params: trained parameters (pytree).
    opt_state: optimizer state.
    rng: PRNG key (uint32[2]); split once per step.
    target_params: Polyak-averaged copy of `params` (None if the algorithm has no target).
    extra: non-trained state carried along unchanged (None if unused).
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  target_params: Any = None
  extra: Any = None

  @classmethod
  def create(cls, params, optimizer: optax.GradientTransformation, rng: jax.Array, *,
             with_target: bool = False, extra: Any = None) -> "TrainState":
    """A fresh state at step 0 (works on boxed `nn.Partitioned` params inside eval_shape)."""
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
               rng=rng, target_params=jax.tree.map(jnp.copy, params) if with_target else None,
               extra=extra)


def make_schedule(lr: float, warmup: int, total_steps: int,
                  final_fraction: float = 0.1) -> optax.Schedule:
  """Linear warmup 0 -> lr over `warmup` steps, then cosine decay to lr * final_fraction."""
  if warmup < 0 or total_steps < 1:
    raise ValueError(f"need warmup >= 0 and total_steps >= 1, got warmup={warmup}, "
                     f"total_steps={total_steps}")
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=lr, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=lr * final_fraction)


def make_optimizer(lr: float, warmup: int, total_steps: int, clip: float | None = 1.0,
                   weight_decay: float = 0.1, b1: float = 0.9, b2: float = 0.95,
                   eps: float = 1e-8, final_fraction: float = 0.1
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Global-norm clipping + AdamW with warmup/cosine schedule.

  Weight decay applies to matrices only (rank >= 2: kernels, embeddings), not biases or norms.

  Returns:
    (optimizer, schedule); pass the schedule to `make_train_step` to log the learning rate.
  """
  schedule = make_schedule(lr, warmup, total_steps, final_fraction)
  decay_mask = lambda params: jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)
  parts = [optax.clip_by_global_norm(clip)] if clip else []
  parts.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                           mask=decay_mask))
  return optax.chain(*parts), schedule


def polyak_update(target: Any, online: Any, tau: float) -> Any:
  """target <- (1 - tau) * target + tau * online (Lillicrap et al. 2016, Alg. 1)."""
  return jax.tree.map(lambda t, o: ((1.0 - tau) * t + tau * o).astype(t.dtype), target, online)


def _split_microbatches(batch: Batch, accum_steps: int, mesh: Mesh | None) -> Batch:
  """[B, ...] -> [A, B/A, ...]; microbatch i takes rows i, i+A, ... so every shard contributes."""
  def split(path, x):
    if x.shape[0] % accum_steps:
      raise ValueError(f"batch{jax.tree_util.keystr(path)} leading dim {x.shape[0]} is not "
                       f"divisible by accum_steps={accum_steps}")
    x = x.reshape(x.shape[0] // accum_steps, accum_steps, *x.shape[1:]).swapaxes(0, 1)
    if mesh is not None:
      x = jax.lax.with_sharding_constraint(
          x, NamedSharding(mesh, P(None, sharding_lib.BATCH_AXES)))
    return x
  return jax.tree_util.tree_map_with_path(split, batch)


def _norm(tree) -> jax.Array:
  return optax.tree.norm(tree).astype(jnp.float32)


def gradient_noise(micro_sq_A: jax.Array, mean_sq: jax.Array) -> dict[str, jax.Array]:
  """Unbiased estimates of the true gradient's squared norm |G|^2 and of the noise of the
  update's gradient, tr(Sigma) / B, from A microbatch gradients g_a (each from B / A rows) and
  their mean g (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training", App. A:
  E|g_a|^2 = |G|^2 + A tr(Sigma) / B and E|g|^2 = |G|^2 + tr(Sigma) / B, rows i.i.d.).

  Their ratio is the noise scale in units of this batch: B_simple / B = grad_noise_sq /
  grad_signal_sq, the batch at which the gradient's noise would equal its signal. Each step's
  estimates are noisy (the signal can come out negative): average numerator and denominator
  over steps before dividing.

  Args:
    micro_sq_A: [A] squared norms |g_a|^2 of the microbatch gradients, A >= 2.
    mean_sq: |g|^2 of their mean.
  """
  a = micro_sq_A.shape[0]
  micro = jnp.mean(micro_sq_A)
  return {"grad_signal_sq": (a * mean_sq - micro) / (a - 1),
          "grad_noise_sq": (micro - mean_sq) / (a - 1)}


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *,
                    schedule: optax.Schedule | None = None, mesh: Mesh | None = None,
                    state_shardings: Any = None, batch_sharding: Any = None,
                    target_update: float | None = None, accum_steps: int = 1,
                    epochs: int = 1, minibatches: int = 1,
                    prepare_batch: Callable[[Batch], Batch] | None = None,
                    donate: bool = True) -> Callable[[TrainState, Batch],
                                                     tuple[TrainState, Metrics]]:
  """Builds the jitted update `step(state, batch) -> (state, metrics)`.

  Args:
    loss_fn: `loss_fn(params, batch, rng, *, state) -> (loss, aux)`; pure; `aux` is a dict of
      scalars (averaged over microbatches).
    optimizer: optax transformation (e.g. from `make_optimizer`).
    schedule: learning-rate schedule, logged as `learning_rate` if given.
    mesh: device mesh; when given, the step is jitted with explicit in/out shardings.
    state_shardings: NamedShardings of the state (from `sharding.init_sharded`); with `mesh`.
    batch_sharding: sharding (or pytree prefix) of the batch; default batch axis over
      (`data`, `fsdp`).
    target_update: Polyak tau for `state.target_params` (None: targets untouched).
    accum_steps: microbatches per update; the batch's leading dim must be divisible by it.
      The gradient is the mean of microbatch gradients, i.e. equal to the full-batch gradient
      when `loss` is a mean over equally sized microbatches (a loss normalised by a count of
      the whole update's batch, e.g. a global token mean, writes that count into the batch in
      `prepare_batch`, as `jaxlm.losses.pg` does).
    epochs, minibatches: optimizer updates per call: `epochs` passes over the batch, each
      shuffling its rows (rng from the state) and splitting them into `minibatches` equal
      minibatches, one update each (PPO's epochs x minibatches per rollout batch). The
      default (1, 1) is one update on the whole batch. `state.step` counts calls; the
      optimizer (and its schedule) counts updates, so build it for num_steps * epochs *
      minibatches updates.
    prepare_batch: applied to each update's (mini)batch before it is split into microbatches.
    donate: donate the input state's buffers to the output.

  Returns:
    The jitted step. Metrics (replicated): loss, grad_norm (before clipping), param_norm,
    update_norm, learning_rate (if `schedule`), with accum_steps > 1 grad_signal_sq and
    grad_noise_sq (`gradient_noise`), and the loss's aux metrics; with several
    updates per call, loss, grad_norm, update_norm and aux are means over the updates and
    param_norm is the final one.
  """
  if accum_steps < 1:
    raise ValueError(f"accum_steps={accum_steps} must be >= 1")
  if target_update is not None and not 0.0 <= target_update <= 1.0:
    raise ValueError(f"target_update (tau)={target_update} must be in [0, 1]")
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def loss_and_grads(state, batch, rng):
    """(loss, aux, grads, the microbatch gradients' squared norms or None)."""
    if accum_steps == 1:
      (loss, aux), grads = grad_fn(state.params, batch, rng, state=state)
      return loss, aux, grads, None

    def body(grads_acc, xs):
      i, micro = xs
      (loss, aux), grads = grad_fn(state.params, micro, jax.random.fold_in(rng, i), state=state)
      return jax.tree.map(jnp.add, grads_acc, grads), (loss, aux, _norm(grads) ** 2)

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    micro = _split_microbatches(batch, accum_steps, mesh)
    grads, (losses, auxes, micro_sq) = jax.lax.scan(body, zeros,
                                                    (jnp.arange(accum_steps), micro))
    aux = jax.tree.map(lambda x: x.mean(0), auxes)
    return losses.mean(), aux, jax.tree.map(lambda g: g / accum_steps, grads), micro_sq

  if epochs < 1 or minibatches < 1:
    raise ValueError(f"epochs={epochs} and minibatches={minibatches} must be >= 1")
  prepare = prepare_batch or (lambda b: b)

  def update(state, batch, rng):
    """One optimizer update; returns the state with new params (step unchanged)."""
    loss, aux, grads, micro_sq = loss_and_grads(state, prepare(batch), rng)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    target = state.target_params
    if target_update is not None and target is not None:
      target = polyak_update(target, params, target_update)
    grad_norm = _norm(grads)
    metrics = {"loss": loss.astype(jnp.float32), "grad_norm": grad_norm,
               "update_norm": _norm(updates), **aux}
    if micro_sq is not None:
      metrics.update(gradient_noise(micro_sq, grad_norm ** 2))
    return state.replace(params=params, opt_state=opt_state, target_params=target), metrics

  def several_updates(state, batch, rng):
    rows = jax.tree.leaves(batch)[0].shape[0]
    if rows % minibatches:
      raise ValueError(f"batch of {rows} rows is not divisible by minibatches={minibatches}")

    def epoch(state, key):
      perm_key, step_key = jax.random.split(key)
      perm = jax.random.permutation(perm_key, rows)
      shuffled = jax.tree.map(lambda x: x[perm], batch)
      minis = _split_microbatches(shuffled, minibatches, mesh)

      def one(state, xs):
        i, mini = xs
        return update(state, mini, jax.random.fold_in(step_key, i))

      return jax.lax.scan(one, state, (jnp.arange(minibatches), minis))

    state, metrics = jax.lax.scan(epoch, state, jax.random.split(rng, epochs))
    return state, jax.tree.map(lambda x: x.mean(), metrics)

  def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    rng, step_rng = jax.random.split(state.rng)
    if epochs * minibatches == 1:
      new_state, metrics = update(state, batch, step_rng)
    else:
      new_state, metrics = several_updates(state, batch, step_rng)
    metrics["param_norm"] = _norm(new_state.params)
    if schedule is not None:
      metrics["learning_rate"] = jnp.asarray(
          schedule(state.step * epochs * minibatches), jnp.float32)
    return new_state.replace(step=state.step + 1, rng=rng), metrics

  donate_argnums = (0,) if donate else ()
  if mesh is None:
    return jax.jit(step, donate_argnums=donate_argnums)
  if state_shardings is None:
    raise ValueError("make_train_step(mesh=...) needs state_shardings "
                     "(from jaxlm.sharding.init_sharded)")
  batch_sharding = batch_sharding or sharding_lib.batch_sharding(mesh)
  return jax.jit(step, in_shardings=(state_shardings, batch_sharding),
                 out_shardings=(state_shardings, sharding_lib.replicated(mesh)),
                 donate_argnums=donate_argnums)


def _count_tokens(batch: Batch) -> int:
  if isinstance(batch, Mapping) and "tokens" in batch:
    return int(np.size(batch["tokens"]))
  return int(np.shape(jax.tree.leaves(batch)[0])[0])


def train(state: TrainState, step_fn: Callable[[TrainState, Batch], tuple[TrainState, Metrics]],
          data: Iterator[Batch], *, num_steps: int, workdir: str | None = None,
          log_every: int = 10, eval_every: int = 0,
          eval_fn: Callable[[TrainState], Mapping[str, float]] | None = None,
          checkpointer: Any = None, checkpoint_every: int = 0, config: Any = None,
          put_batch: Callable[[Batch], Batch] = jax.device_put,
          tokens_per_batch: Callable[[Batch], int] = _count_tokens,
          transfer_guard: str | None = None, progress: bool = True,
          show: tuple[str, ...] = ("loss",), on_nonfinite: str = "stop"
          ) -> tuple[TrainState, list[dict[str, float]]]:
  """Runs `step_fn` from `state.step` to `num_steps`.

  Args:
    state: initial (or restored) state.
    step_fn: from `make_train_step`.
    data: iterator of host batches, or a callable `data(state) -> batch` (online RL: rollouts
      of the current policy); if it has `get_state() -> dict` its position is saved with each
      checkpoint (restore it with `set_state` before calling `train` to resume); if it has
      `pop_stats() -> dict`, those host-side scalars (e.g. a rollout's wall time) join each
      logged row.
    num_steps: total number of updates (the loop stops when `state.step == num_steps`).
    workdir: where metrics.jsonl, tb/ and learning_curve.png go (None: nothing written).
    log_every: steps between metric fetches (the only host syncs in the loop).
    eval_every: steps between `eval_fn(state)` calls (besides step 0 of a fresh run and the
      last step); results logged with an `eval/` prefix.
    checkpointer: a `jaxlm.checkpoint.Checkpointer` (None: no checkpoints).
    checkpoint_every: steps between checkpoints (a final one is always written).
    config: JSON-able config saved with the checkpoints.
    put_batch: host batch -> device batch (e.g. `sharding.shard_batch` or
      `distributed.host_local_to_global` bound to the mesh).
    tokens_per_batch: tokens in one batch (for tokens/s); default `batch["tokens"].size`.
    transfer_guard: e.g. "disallow": run the step under `jax.transfer_guard` so an implicit
      host<->device copy inside the step is an error.
    progress: show a tqdm bar.
    show: metrics shown on the bar (besides tokens/s) when logged.
    on_nonfinite: what a non-finite loss or parameter norm does, checked at every logged step
      and before every checkpoint: "stop" raises FloatingPointError naming the step and the
      non-finite metrics (the last checkpoint stays the one before the bad step); "continue"
      logs a warning.

  Returns:
    (final state, history): history rows are the logged metrics (train and eval).

  Raises:
    FloatingPointError: non-finite loss or parameters with `on_nonfinite="stop"`.
  """
  if on_nonfinite not in ("stop", "continue"):
    raise ValueError(f"on_nonfinite={on_nonfinite!r}; expected 'stop' or 'continue'")
  start = int(jax.device_get(state.step))
  writer = metrics_lib.MetricWriter(workdir)
  history: list[dict[str, float]] = []
  guard = (lambda: jax.transfer_guard(transfer_guard)) if transfer_guard else (
      contextlib.nullcontext)

  def log(step, scalars):
    history.append({"step": step, **scalars})
    writer.write(step, scalars)

  def run_eval(step):
    if eval_fn is not None:
      log(step, {f"eval/{k}": float(v) for k, v in eval_fn(state).items() if v is not None})

  def save(step):
    if checkpointer is not None:
      data_state = data.get_state() if hasattr(data, "get_state") else None
      checkpointer.save(step, state, data_state=data_state, config=config)

  # Redirected to a file (cluster logs), redraw every 30 s instead of flooding it; maxinterval
  # too, or tqdm's monitor thread forces an extra redraw 10 s after a quiet spell.
  interval = 0.1 if sys.stderr.isatty() else 30.0
  bar = tqdm.tqdm(total=num_steps, initial=start, desc="train", disable=not progress,
                  dynamic_ncols=True, mininterval=interval, maxinterval=max(interval, 10.0))
  if start == 0:
    run_eval(0)
  last_saved = start or None

  def check_finite(step, scalars):
    if math.isfinite(scalars["loss"]) and math.isfinite(scalars.get("param_norm", 0.0)):
      return
    bad = sorted((k != "loss", k) for k, v in scalars.items() if not math.isfinite(v))
    what = f"step {step}: non-finite " + ", ".join(f"{k}={scalars[k]}" for _, k in bad)
    if on_nonfinite == "continue":
      logging.warning("%s; continuing (on_nonfinite='continue')", what)
      return
    bar.close()
    writer.close()
    if checkpointer is not None:
      checkpointer.wait()
    kept = f"the last checkpoint is step {last_saved}" if last_saved else "no checkpoint written"
    raise FloatingPointError(f"{what} (checked every {log_every} steps and before each "
                             f"checkpoint); stopped, {kept}. on_nonfinite='continue' trains on")

  tokens, t0, metrics = 0, time.perf_counter(), None
  for step in range(start + 1, num_steps + 1):
    host_batch = data(state) if callable(data) else next(data)
    tokens += tokens_per_batch(host_batch)
    batch = put_batch(host_batch)
    with guard():
      state, metrics = step_fn(state, batch)
    bar.update(1)
    logged = step % log_every == 0 or step == num_steps
    saving = (checkpointer is not None and checkpoint_every and step % checkpoint_every == 0
              and step != num_steps)
    if logged or saving:  # The loop's only host syncs (besides evals and saves).
      scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if logged:
      elapsed = time.perf_counter() - t0
      scalars["tokens_per_s"] = tokens / max(elapsed, 1e-9)
      if hasattr(data, "pop_stats"):
        scalars.update(data.pop_stats())
      log(step, scalars)
      bar.set_postfix({**{k: f"{scalars[k]:.4g}" for k in show if k in scalars},
                       "tok_s": f"{scalars['tokens_per_s']:.0f}"},
                      refresh=False)  # shown at the next redraw (mininterval)
      tokens, t0 = 0, time.perf_counter()
    if logged or saving:
      check_finite(step, scalars)
    if eval_every and step % eval_every == 0 and step != num_steps:
      run_eval(step)
    if saving:
      save(step)
      last_saved = step
  bar.close()
  if num_steps > start:
    run_eval(num_steps)
    save(num_steps)
  if checkpointer is not None:
    checkpointer.wait()
  writer.close()
  if workdir is not None and jax.process_index() == 0 and os.path.exists(
      os.path.join(workdir, "metrics.jsonl")):
    plots.plot_learning_curve(metrics_lib.read_metrics(workdir),
                              os.path.join(workdir, "learning_curve.png"))
  return state, history


def fit(run_dir: str, config: TrainConfig, init_fn: Callable[[jax.Array], Any],
        loss_fn: LossFn, data: Any, *, resume: bool = False,
        target_update: float | None = None,
        extra_fn: Callable[[Any], Any] | None = None,
        eval_fn: Callable[[TrainState], Mapping[str, float]] | None = None,
        eval_every: int = 0, saved_config: Any = None, epochs: int = 1, minibatches: int = 1,
        prepare_batch: Callable[[Any], Any] | None = None, show: tuple[str, ...] = ("loss",)
        ) -> tuple[TrainState, list[dict[str, float]]]:
  """The one training driver: init or resume, the loop, metrics, evals and checkpoints.

  Every algorithm (SFT, BC, MC, ILQL, the PRM, ...) trains through this: it supplies
  `init_fn(key) -> params` (may hold `nn.Partitioned` boxes: they shard the state), a pure
  `loss_fn` (module docstring) and a `data` iterator with a saveable position
  (`jaxlm.data.iterators.IndexedBatches`: `get_state`, `set_state`, `num_tokens`).

  Args:
    run_dir: metrics.jsonl, tb/, learning_curve.png and checkpoints/ go here.
    config: steps, batch, optimizer, mesh, checkpointing, seed (`jaxlm.config.TrainConfig`).
    init_fn: `key -> params`.
    loss_fn: `loss_fn(params, batch, rng, *, state) -> (loss, aux)`.
    data: the batch iterator (batches of `config.batch_size` rows).
    resume: continue from the newest intact checkpoint in `run_dir/checkpoints` when there is
      one (a finished run is loaded, not retrained), after checking that its saved config
      equals `saved_config` (differences are a ValueError naming the fields unless
      `config.allow_config_change`); metrics.jsonl keeps only the rows up to the restored
      step. Without it, existing checkpoints are an error.
    target_update: Polyak rate of `TrainState.target_params` (None: no target copy).
    extra_fn: `initial params -> TrainState.extra`, non-trained state built inside the sharded
      init (e.g. a frozen copy of the initial policy: it shards like the params).
    eval_fn, eval_every: `eval_fn(state) -> scalars` every `eval_every` steps (and at step 0 of
      a fresh run and at the end), logged with an `eval/` prefix.
    saved_config: the algorithm's whole config, stored with each checkpoint (default
      `config`).
    epochs, minibatches, prepare_batch: updates per batch (`make_train_step`); the schedule
      spans num_steps * epochs * minibatches updates.
    show: metrics on the progress bar.

  Returns:
    (final state, logged history).
  """
  ckpt_dir = os.path.join(run_dir, "checkpoints")
  # Complete steps only: a kill during a save leaves a temporary directory, no checkpoint.
  checkpointer = checkpoint_lib.Checkpointer(ckpt_dir, keep=config.keep_checkpoints)
  has_ckpt = bool(checkpointer.all_steps())
  if has_ckpt and not resume:
    raise ValueError(f"{ckpt_dir} already holds checkpoints; pass --resume or use a fresh "
                     "workdir")
  saved_config = config if saved_config is None else saved_config
  mesh = sharding_lib.make_mesh(*config.mesh)
  optimizer, schedule = make_optimizer(config.lr, config.warmup,
                                       config.num_steps * epochs * minibatches, config.clip,
                                       config.weight_decay)

  def state_fn(key):
    init_key, state_key = jax.random.split(key)
    params = init_fn(init_key)
    return TrainState.create(params, optimizer, state_key,
                             with_target=target_update is not None,
                             extra=None if extra_fn is None else extra_fn(params))

  state, shardings = sharding_lib.init_sharded(state_fn, mesh, jax.random.PRNGKey(config.seed),
                                               rules=config.sharding_rules)
  step_fn = make_train_step(loss_fn, optimizer, schedule=schedule, mesh=mesh,
                            state_shardings=shardings, target_update=target_update,
                            accum_steps=config.accum_steps, epochs=epochs,
                            minibatches=minibatches, prepare_batch=prepare_batch)
  if has_ckpt:
    state, data_state, old_config = checkpointer.restore(state, shardings)
    _check_config(ckpt_dir, old_config, saved_config, config.allow_config_change)
    data.set_state(data_state)
    logging.info("%s: resumed at step %d", run_dir, int(state.step))
  metrics_lib.truncate_metrics(run_dir, int(state.step) if has_ckpt else -1)
  state, history = train(
      state, step_fn, data, num_steps=config.num_steps, workdir=run_dir,
      log_every=config.log_every, eval_every=eval_every, eval_fn=eval_fn,
      checkpointer=checkpointer, checkpoint_every=config.checkpoint_every,
      config=saved_config, put_batch=lambda b: sharding_lib.shard_batch(b, mesh),
      tokens_per_batch=data.num_tokens,
      transfer_guard="disallow" if config.transfer_guard else None, show=show,
      on_nonfinite=config.on_nonfinite)
  checkpointer.close()
  return state, history


def _check_config(ckpt_dir: str, saved: dict, current: Any, allow: bool) -> None:
  """Raises ValueError naming the fields where the checkpoint's config differs (unless allow)."""
  changes = checkpoint_lib.config_changes(saved, current)
  if not changes:
    return
  what = f"the config differs from the one saved in {ckpt_dir}: {'; '.join(changes)}"
  if not allow:
    raise ValueError(f"--resume: {what}. Resume with the saved values, or set "
                     "train.allow_config_change=True (--config.train.allow_config_change=True) "
                     "to continue with the new ones")
  logging.warning("resuming although %s (allow_config_change)", what)
