"""One GRPO step: jaxlm (`pg.Rollouts` + `train.make_train_step`) vs google/tunix's `GRPOLearner`.

The second reference of `benchmarks.rl_bench` (which compares against TRL). Both sides train the
same tiny LLaMA (2 layers, d=64, 2 heads of 32, SwiGLU d_ff=256, RMSNorm, RoPE theta 1e6,
untied head, vocab = the bandit's 8 ids) from the SAME weights: jaxlm initialises them, they are
copied into tunix's `Llama3` (nnx) through the HF state-dict layout
(`convert.state_dict_from_params`) and the two models' logits are checked to agree. The task is
the prompt -> 3-token bandit (`jaxlm.envs.bandit.task()`). One step = sample G=8 completions for
each of P=8 prompts (64 rows, 3 new tokens, temperature 1), reward them, compute group-normalised
advantages and apply one clipped-surrogate AdamW update (lr 1e-3 constant, betas (0.9, 0.999),
eps 1e-8, no weight decay, grad-norm clip 1, beta = 0: no reference model, token-mean loss,
epsilon 0.2, one update per batch).

tunix step: one global step of `GRPOLearner.train()` with the "vanilla" rollout engine
(`tunix.generate.sampler.Sampler`, KV cache, jitted prefill + decode), actor and rollout sharing
one model on a 1x1 ("fsdp", "tp") CPU mesh, the reward function, `grpo` advantages and
`peft_trainer`'s jitted update. jaxlm step: as in `benchmarks.rl_bench` (its `Ours`).

Timing is interleaved in one process: the prompt iterator handed to `GRPOLearner.train()` runs
a block of jaxlm steps every BLOCK tunix steps (tunix asks for the next batch only after the
previous update was dispatched; the tunix model is synced before the clock is read), so blocks
alternate (tunix, jaxlm, tunix, ...); the first WARMUP steps of each side (compilation) are not
timed. Steps/s is the median over blocks and the ratio the median of per-block ratios (the
machine is shared: compare ratios). Both sides draw the P prompts of a step i.i.d. with
replacement from the 4 bandit prompts. Before timing, one jaxlm rollout batch (its rows without
a sampled PAD, see below) is fed to both losses: the gradients agree to 6e-7 relative.

Measured (tunix 0.1.7, 2 cores shared with other jobs, load average 12-17; default 3 + 160
steps, ~3.5 min, ~2.5 of them start-up and compilation): jaxlm 14.6-18.7 steps/s, tunix
6.9-10.7, ratio 1.91x and 1.81x in two runs (1.92x and 2.37x for `--seed 1` / `--seed 2` run
side by side); the 3x asked of the TRL comparison is NOT reached against tunix. In jaxlm's step
the jitted update (~40-50 ms of device time here) outweighs rollout + scoring (~30 ms).
Both reward trends are the same within seed noise: mean reward over steps 1-20 is 0.24-0.26 on
both sides for every seed; over steps 141-160 (jaxlm / tunix) seed 0: 0.76 / 0.87, seed 1:
0.89 / 0.74, seed 2: 0.73 / 0.69 (means 0.79 / 0.77; the bandit has seed-dependent plateaus).

Setup (tunix pins its own transformers and pulls many packages: use a separate venv):

    python -m venv V && V/bin/pip install google-tunix     # 0.1.7 was used (jax 0.10.2)
    V/bin/pip install -e . --no-deps
    V/bin/pip install chex tqdm safetensors matplotlib tensorboardX   # jaxlm's other imports
    V/bin/python -m benchmarks.rl_bench_tunix                  # updates benchmarks/rl_bench.json
    V/bin/python -m benchmarks.rl_bench_tunix --steps 20 --block 10   # quicker
    V/bin/python -m benchmarks.rl_bench_tunix --seed 1 --out /tmp/s1.json   # another seed

Rows whose name contains "tunix" are replaced in benchmarks/rl_bench.json; the other rows (TRL,
from `benchmarks.rl_bench`) are kept. Running `benchmarks.rl_bench` rewrites the whole file, so
run this script after it.

Differences from jaxlm (tunix 0.1.7 `GRPOConfig` / `RolloutConfig`) a reader should know:
  * loss aggregation: set to loss_agg_mode="token-mean" (sum over the batch's completion
    tokens / their count) = jaxlm aggregation="token_mean". tunix's default is
    "sequence-mean-token-mean" (= jaxlm "seq_mean_token_mean").
  * advantages: tunix `grpo` = (r - group mean) / (group std ddof=1 + 1e-6), the same as
    jaxlm's estimator "grpo".
  * epsilon=0.2 both ways (tunix GRPOConfig has no epsilon_high; the loss falls back to epsilon).
    tunix also clips the log-ratio to [-20, 20] before exp (never active at one update/batch).
  * beta: tunix's default is 0.04 (a reference model and k-"kl" penalty); set to 0.0 here.
  * num_iterations=1: tunix then uses the trained forward's detached log-probs as the "old"
    ones (the ratio is exactly 1, as in TRL); jaxlm recomputes behaviour log-probs in `score`
    (one extra forward per step that tunix does not pay).
  * completion mask: tunix masks completion tokens equal to the pad id, so a sampled PAD (id 0
    is in the model's vocabulary) drops out of the loss and out of later tokens' attention;
    jaxlm's mask is by position (all 3 tokens count). The EOS id is 8, outside the vocabulary,
    so neither side ever stops early (the bandit has no stop token).
  * sampling seed: `RolloutConfig.seed=None` makes tunix's vanilla sampler use PRNGKey(0) at
    EVERY step; here the seed is set to a new value before each step (tunix would otherwise
    replay the same random numbers, only the weights changing).
  * model init: tunix's Llama3 initialises the MLP projections to zero (gate and up both zero
    is a fixed point: their gradients vanish) and the rest with N(0, 0.01); it is meant to load
    checkpoints. Both sides here start from jaxlm's initialisation instead.
  * tunix's Llama3 applies RoPE with base 1e6 whatever `ModelConfig.rope_theta` says; jaxlm's
    config uses rope_theta=1e6 to compute the same function.
  * tunix's `peft_trainer` logs metrics and wraps the loss in its own jit; its rollout
    detokenises completions to text and the reward reads the text back (the adapter below);
    jaxlm's rewards read token ids.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from benchmarks import rl_bench

P, G, NEW = rl_bench.P, rl_bench.G, rl_bench.NEW
LR, SEED = rl_bench.LR, rl_bench.SEED
WARMUP, STEPS, BLOCK, CURVE_WINDOW = rl_bench.WARMUP, rl_bench.STEPS, rl_bench.BLOCK, 20
D_MODEL, N_LAYERS, N_HEADS, D_FF, ROPE_THETA = 64, 2, 2, 256, 1e6
_OUT = rl_bench.OUT


class _Vocab:
  """The tokenizer interface tunix's `TokenizerAdapter` accepts (encode, decode, bos_id, eos_id,
  pad_id) over the bandit ids: "<pad>"=0, "<bos>"=1, "s0".. = 2..; eos = vocab (never sampled)."""

  def __init__(self, vocab: int):
    from jaxlm.envs import bandit  # pylint: disable=g-import-not-at-top
    self.vocab, self.bandit = vocab, bandit
    self.names = ["<pad>", "<bos>"] + [f"s{i}" for i in range(vocab - bandit.FIRST)]
    self.ids = {w: i for i, w in enumerate(self.names)}

  def encode(self, text: str, **kwargs) -> list[int]:
    del kwargs
    return [self.ids[w] for w in text.split()]

  def decode(self, ids, **kwargs) -> str:
    del kwargs
    return " ".join(self.names[int(i)] if 0 <= int(i) < self.vocab else "<eos>" for i in ids)

  def bos_id(self) -> int:
    return self.bandit.BOS

  def eos_id(self) -> int:
    return self.vocab

  def pad_id(self) -> int:
    return self.bandit.PAD


def _model_config(vocab: int):
  from jaxlm.models import transformer  # pylint: disable=g-import-not-at-top
  return transformer.TransformerConfig(
      vocab_size=vocab, d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS, d_ff=D_FF, max_len=16,
      norm="rmsnorm", norm_eps=1e-5, pos="rope", rope_theta=ROPE_THETA, mlp="swiglu",
      tie_embeddings=False, qkv_bias=False, proj_bias=False)


def _tunix_arrays(cfg, sd):
  """(attribute path in tunix's `Llama3`, array in its layout) for an HF-layout state dict."""
  d, n, k = cfg.d_model, cfg.n_heads, cfg.kv_heads
  hd = d // n
  yield ("embedder", "input_embedding"), sd["model.embed_tokens.weight"]
  yield ("final_norm", "w"), sd["model.norm.weight"]
  yield ("lm_head", "w"), sd["lm_head.weight"].T
  for i in range(cfg.n_layers):
    h, at = f"model.layers.{i}.", ("layers", i)
    yield at + ("input_layernorm", "w"), sd[h + "input_layernorm.weight"]
    yield at + ("post_attention_layernorm", "w"), sd[h + "post_attention_layernorm.weight"]
    for name, heads in (("q", n), ("k", k), ("v", k)):  # HF [heads*hd, D] -> [D, heads, hd]
      yield (at + ("attn", f"{name}_proj", "w"),
             sd[f"{h}self_attn.{name}_proj.weight"].T.reshape(d, heads, hd))
    yield at + ("attn", "o_proj", "w"), sd[h + "self_attn.o_proj.weight"].T.reshape(n, hd, d)
    for name in ("gate", "up", "down"):  # HF [out, in] -> nnx.Linear kernel [in, out]
      yield at + ("mlp", f"{name}_proj", "kernel"), sd[f"{h}mlp.{name}_proj.weight"].T


def _walk(tree, path):
  for key in path:
    tree = tree[key] if isinstance(key, int) else getattr(tree, key)
  return tree


def _tunix_model(cfg, params):
  """tunix `Llama3` holding jaxlm's `params` (via the HF state-dict layout)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from jaxlm.models import convert  # pylint: disable=g-import-not-at-top
  from tunix.models.llama3 import model as llama3  # pylint: disable=g-import-not-at-top
  tcfg = llama3.ModelConfig(num_layers=cfg.n_layers, vocab_size=cfg.vocab_size,
                            embed_dim=cfg.d_model, hidden_dim=cfg.d_ff, num_heads=cfg.n_heads,
                            head_dim=cfg.d_model // cfg.n_heads, num_kv_heads=cfg.kv_heads,
                            rope_theta=int(cfg.rope_theta), norm_eps=cfg.norm_eps,
                            weight_tying=False)
  model = llama3.Llama3(tcfg, rngs=nnx.Rngs(SEED))
  for path, value in _tunix_arrays(cfg, convert.state_dict_from_params(cfg, params)):
    param = _walk(model, path)
    assert param[...].shape == value.shape, (path, param[...].shape, value.shape)
    param[...] = jax.numpy.asarray(np.asarray(value, np.float32))
  return model


def _same_batch_gap(cfg, ours, model) -> tuple[float, int]:
  """Max over parameters of |g_tunix - g_jaxlm| / max|g_jaxlm| for the loss gradient of one
  jaxlm rollout batch (rows without a sampled PAD, which tunix masks), and the rows used."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from tunix.rl import algo_core  # pylint: disable=g-import-not-at-top
  from tunix.rl.grpo import grpo_learner  # pylint: disable=g-import-not-at-top
  from jaxlm.algos import pg  # pylint: disable=g-import-not-at-top
  from jaxlm.models import convert  # pylint: disable=g-import-not-at-top
  config = ours.rollouts.config
  full = ours.rollouts(ours.state)
  prompt = len(ours.rollouts.task.train_prompts[0])
  tokens = np.asarray(full.rl.tokens)
  rows = np.flatnonzero((tokens[:, prompt:] != 0).all(axis=1))
  batch = pg.prepare_batch(config, jax.tree.map(lambda x: x[rows], full))
  forward = pg.networks(config, pretrained=ours.state.params["policy"])[2]
  loss_fn = pg.make_loss(config, forward)
  g_ours = jax.grad(lambda p: loss_fn(p, batch, None, state=None)[0])(ours.state.params)
  want = dict(_tunix_arrays(cfg, convert.state_dict_from_params(cfg, g_ours["policy"])))
  example = grpo_learner.TrainExample(
      prompt_ids=jax.numpy.asarray(tokens[rows, :prompt]),
      prompt_mask=jax.numpy.ones((len(rows), prompt), bool),
      completion_ids=jax.numpy.asarray(tokens[rows, prompt:]),
      completion_mask=jax.numpy.ones((len(rows), tokens.shape[1] - prompt), bool),
      advantages=jax.numpy.asarray(np.asarray(full.advantages)[rows, prompt - 1]),
      ref_per_token_logps=None, old_per_token_logps=None)
  algo = grpo_learner.GRPOConfig(num_generations=G, beta=0.0, epsilon=0.2,
                                 loss_agg_mode="token-mean")
  algo.temperature = 1.0
  g_tunix = nnx.grad(lambda m: algo_core.grpo_loss_fn(m, example, algo, pad_id=0,
                                                      eos_id=cfg.vocab_size)[0])(model)
  gap = max(float(np.abs(np.asarray(_walk(g_tunix, path)[...]) - w).max()
                  / max(np.abs(w).max(), 1e-12)) for path, w in want.items())
  return gap, len(rows)


def _tunix_logits(model, tokens_BxT: np.ndarray) -> np.ndarray:
  b, t = tokens_BxT.shape
  positions = np.broadcast_to(np.arange(t), (b, t))
  causal = np.broadcast_to(np.tril(np.ones((t, t), bool)), (b, t, t))
  logits, _ = model(jax.numpy.asarray(tokens_BxT), jax.numpy.asarray(positions), None,
                    jax.numpy.asarray(causal))
  return np.asarray(logits)


def run(steps: int = STEPS, block: int = BLOCK, warmup: int = WARMUP,
        rollout_seed: int = SEED) -> list[dict]:
  """Interleaved timing and reward curves; returns rows {name, ours, reference, ratio, unit}.

  `rollout_seed` seeds both sides' prompt draws and sampling (the weights always start from
  SEED's initialisation)."""
  import optax  # pylint: disable=g-import-not-at-top
  import tunix  # pylint: disable=g-import-not-at-top
  from tunix.rl import rl_cluster as rl_cluster_lib  # pylint: disable=g-import-not-at-top
  from tunix.rl.grpo import grpo_learner  # pylint: disable=g-import-not-at-top
  from tunix.rl.rollout import base_rollout  # pylint: disable=g-import-not-at-top
  from jaxlm.envs import bandit  # pylint: disable=g-import-not-at-top
  from jaxlm.models import transformer  # pylint: disable=g-import-not-at-top

  if steps % block:
    raise ValueError(f"steps={steps} must be a multiple of block={block}")
  threads = len(os.sched_getaffinity(0))
  task, vocab = bandit.task(), bandit.vocab_size()
  cfg = _model_config(vocab)
  probe = np.array([[bandit.BOS, bandit.FIRST, bandit.FIRST + 3, bandit.FIRST + 1]])
  params = transformer.Transformer(cfg).init(jax.random.key(SEED), probe)["params"]
  model = _tunix_model(cfg, params)

  # Same weights, same function: tunix's logits match jaxlm's.
  want = np.asarray(transformer.Transformer(cfg).apply({"params": params}, probe).logits)
  logit_gap = float(np.abs(_tunix_logits(model, probe) - want).max())
  assert logit_gap < 1e-4, f"tunix logits differ from jaxlm by {logit_gap}"

  total = warmup + steps
  ours = rl_bench.Ours(cfg, params, task, total)  # pylint: disable=protected-access
  ours.rollouts.seed = rollout_seed  # prompt draws and sampling keys of jaxlm's rollouts
  # Same batch, same update direction (before either side trains).
  grad_gap, grad_rows = _same_batch_gap(cfg, ours, model)
  print(f"same batch ({grad_rows} rows): tunix vs jaxlm loss gradient, max relative gap "
        f"{grad_gap:.1e}", flush=True)
  assert grad_gap < 1e-4, f"tunix and jaxlm gradients differ by {grad_gap} (relative)"

  vocab_adapter = _Vocab(vocab)
  mesh = jax.make_mesh((1, 1), ("fsdp", "tp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  rollout_config = base_rollout.RolloutConfig(
      max_tokens_to_generate=NEW, temperature=1.0, top_p=1.0, top_k=None,
      max_prompt_length=len(task.train_prompts[0]), kv_cache_size=16, data_type=None)
  optimizer = optax.chain(
      optax.clip_by_global_norm(1.0),
      optax.adamw(LR, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0))
  cluster = rl_cluster_lib.RLCluster(
      actor=model, reference=None, tokenizer=vocab_adapter,
      cluster_config=rl_cluster_lib.ClusterConfig(
          role_to_mesh={rl_cluster_lib.Role.ACTOR: mesh, rl_cluster_lib.Role.REFERENCE: mesh,
                        rl_cluster_lib.Role.ROLLOUT: mesh},
          rollout_engine="vanilla", offload_to_cpu=False, rollout_config=rollout_config,
          training_config=rl_cluster_lib.RLTrainingConfig(
              actor_optimizer=optimizer, eval_every_n_steps=10**9, max_steps=total,
              mini_batch_size=P, train_micro_batch_size=P, pbar_description=None)))

  ref_rewards: list[float] = []

  def bandit_reward(prompts, completions, prompt_index, **kwargs):
    del prompts, kwargs
    r = [task.reward("train", int(i), vocab_adapter.encode(text))
         for i, text in zip(prompt_index, completions)]
    ref_rewards.append(float(np.mean(r)))
    return r

  learner = grpo_learner.GRPOLearner(
      rl_cluster=cluster, reward_fns=bandit_reward,
      algo_config=grpo_learner.GRPOConfig(
          num_generations=G, num_iterations=1, beta=0.0, epsilon=0.2,
          loss_agg_mode="token-mean", advantage_estimator="grpo", policy_loss_fn="grpo"))

  times = {"ours": [], "reference": []}
  rng = np.random.default_rng(rollout_seed)
  clock = {"t0": 0.0}

  def sync_tunix():
    from flax import nnx  # pylint: disable=g-import-not-at-top
    jax.block_until_ready(nnx.state(cluster.actor_trainer.model))

  def batches():
    """P prompts per step (i.i.d.), interleaving jaxlm blocks at tunix block boundaries."""
    for step in range(total):
      if step >= warmup and (step - warmup) % block == 0:
        sync_tunix()
        if step > warmup:
          times["reference"].append(time.perf_counter() - clock["t0"])
        if step == warmup:
          ours.run(warmup)  # compile
        else:
          times["ours"].append(ours.run(block)[0])
          print(f"  block {len(times['ours'])}/{steps // block}: tunix "
                f"{block / times['reference'][-1]:.2f} steps/s, jaxlm "
                f"{block / times['ours'][-1]:.2f} steps/s", flush=True)
        clock["t0"] = time.perf_counter()
      rollout_config.seed = rollout_seed + 1000 + step  # tunix would reuse PRNGKey(0) every step
      index = rng.integers(0, len(task.train_prompts), P)
      # Arrays, not lists: tunix repeats each leaf of the batch pytree G times.
      yield {"prompts": np.array([vocab_adapter.decode(task.train_prompts[i][1:])
                                  for i in index]),
             "prompt_index": index}

  learner.train(batches())
  sync_tunix()
  times["reference"].append(time.perf_counter() - clock["t0"])
  while len(times["ours"]) < steps // block:
    times["ours"].append(ours.run(block)[0])
  assert len(ref_rewards) == total and len(ours.rewards) == total, (len(ref_rewards),
                                                                     len(ours.rewards))
  assert len(times["reference"]) == steps // block, times

  sps = {side: block / np.array(t) for side, t in times.items()}
  window = min(CURVE_WINDOW, total)
  curve_at = list(range(window, total + 1, window))
  curves = {side: [float(np.mean(r[max(0, s - window):s])) for s in curve_at]
            for side, r in (("ours", ours.rewards), ("reference", ref_rewards))}
  version = getattr(tunix, "__version__", None) or _dist_version("google-tunix")
  setup = (f"P{P} x G{G}, {NEW} new tokens, llama 2x64 vocab {vocab}, {threads} threads, "
           f"tunix {version}")
  speed = {"name": f"tunix: grpo_step_steps_per_s ({setup})", "unit": "steps/s",
           "ours": float(np.median(sps["ours"])), "reference": float(np.median(sps["reference"])),
           "ratio": float(np.median(sps["ours"] / sps["reference"])),
           "blocks": {side: v.tolist() for side, v in sps.items()}}
  rows = [speed]
  for label, at in (("first", 0), ("last", -1)):
    o, r = curves["ours"][at], curves["reference"][at]
    rows.append({"name": f"tunix: grpo_bandit_reward_{label}_{window}_steps (of {total})",
                 "unit": "mean reward", "ours": o, "reference": r, "ratio": o / max(r, 1e-9)})
  rows[-1].update(curve_steps=curve_at, ours_curve=curves["ours"],
                  reference_curve=curves["reference"], initial_logit_gap=logit_gap,
                  same_batch_grad_gap=grad_gap)
  return rows


def _dist_version(name: str) -> str:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  try:
    return metadata.version(name)
  except metadata.PackageNotFoundError:
    return "unknown"


def main() -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for flag, default, doc in (
      ("steps", STEPS, "timed steps of each side"), ("block", BLOCK, "steps per block"),
      ("warmup", WARMUP, "untimed first steps"),
      ("threads", 0, "pin the process to this many cores (0 = all allowed)"),
      ("seed", SEED, "seed of both sides' prompt draws and sampling")):
    parser.add_argument(f"--{flag}", type=int, default=default, help=doc)
  parser.add_argument("--out", default=_OUT, help="JSON file whose tunix rows are replaced")
  a = parser.parse_args()
  if a.threads:  # before JAX's CPU client starts (it sizes its thread pool by the affinity)
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:a.threads])
  t = time.perf_counter()
  rows = run(a.steps, a.block, a.warmup, a.seed)
  for row in rows:
    print(f"{row['name']}: jaxlm {row['ours']:.3f}, tunix {row['reference']:.3f} "
          f"{row['unit']} (ratio {row['ratio']:.2f})")
  print(f"mean reward over windows of {rows[-1]['curve_steps'][0]} steps (step: jaxlm, tunix):",
        ", ".join(f"{s}: {o:.3f}, {r:.3f}" for s, o, r in zip(
            rows[-1]["curve_steps"], rows[-1]["ours_curve"], rows[-1]["reference_curve"])))
  rl_bench.merge(rows, a.out, owns=lambda name: name.startswith("tunix"))
  print(f"wrote {a.out} ({time.perf_counter() - t:.0f} s)")
  return rows


if __name__ == "__main__":
  main()
