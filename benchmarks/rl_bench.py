"""One GRPO step: jaxlm (`pg.Rollouts` + `train.make_train_step`) vs TRL's `GRPOTrainer`.

Both sides train the same tiny GPT-2 (2 layers, d=64, 2 heads, vocab = the bandit's 8 ids, 16
positions, no dropout) from the SAME random weights (the HF model is converted with
`jaxlm.models.convert.from_hf`) on the prompt -> 3-token bandit (`jaxlm.envs.bandit.task()`,
reward = fraction of the 3 target tokens matched). One step = sample G=8 completions for each of
P=8 prompts (64 rows, 3 new tokens, temperature 1), reward them, compute group-normalised
advantages and apply one clipped-surrogate AdamW update (lr 1e-3 constant, betas (0.9, 0.999),
no weight decay, grad-norm clip 1, beta = 0: no reference model, token-mean loss, epsilon 0.2).

jaxlm step: `pg.Rollouts.__call__` (jitted sampler, host reward, jitted score) + the jitted,
donated update from `train.make_train_step(pg.make_loss, prepare_batch=pg.prepare_batch)`.
TRL step: one iteration of `GRPOTrainer.train()`'s loop (generation with HF `generate`, the
reward function, advantages, forward + backward + `torch.optim.AdamW`), float32 on CPU,
gradient checkpointing off, no logging / saving / eval / vLLM.

Timing is interleaved in one process: a `TrainerCallback` at TRL's `on_step_end` runs a block of
jaxlm steps every BLOCK TRL steps, so blocks alternate (TRL, ours, TRL, ...); the first WARMUP
steps of each side (compilation, first-step setup) are not timed. Steps/s is the median over
blocks and the ratio the median of per-block ratios (the machine is shared: compare ratios).
Both sides' reward curves come from the same steps. They start equal and both rise; TRL's is
a little higher late in training because its sampler walks shuffled epochs of the dataset (here
16 copies of each of the 4 prompts), so every step sees each prompt about twice, while
`pg.Rollouts` draws the P prompts i.i.d. with replacement (with balanced draws jaxlm reaches
0.90-0.98 by step 160 over 4 seeds, i.i.d. 0.82-0.90, TRL 0.90-0.91). On the same batch the
two updates agree: advantages to ~2e-3 (the std epsilons) and gradients to 7e-4 relative.

    python -m benchmarks.rl_bench                       # writes benchmarks/rl_bench.json
    python -m benchmarks.rl_bench --steps 40 --block 10  # quicker

TRL GRPO defaults a reader should know (trl 1.16 `GRPOConfig`) against jaxlm's `pg.Config`:
  * loss aggregation: TRL `loss_type="dapo"` = token sum / active tokens of the whole
    generation batch = jaxlm `aggregation="token_mean"` (both defaults). TRL "grpo" = jaxlm
    "seq_mean_token_mean"; TRL "dr_grpo" = jaxlm "seq_sum_constant" (L = max_completion_length);
    TRL "bnpo" normalises by the local micro-batch's tokens (jaxlm always uses the whole update's).
  * scale_rewards="group": (r - group mean) / (group std, Bessel ddof=1, + 1e-4); jaxlm
    estimator "grpo" uses ddof=1 and + 1e-6 (advantages differ by ~1e-4/std relative).
  * epsilon=0.2, epsilon_high=None (= epsilon): jaxlm clip_low = clip_high = 0.2. Same.
  * beta=0.0 (no reference model): jaxlm kl_coef=0.0. With beta > 0 TRL adds k3 in the loss
    multiplied by the importance ratio (use_bias_correction_kl=True); jaxlm's k3 in_loss is not.
  * num_iterations=1: TRL then reuses the trained forward's detached log-probs as the
    "old" ones; jaxlm always recomputes behaviour log-probs in `score` (one extra forward).
  * Different from jaxlm and overridden here: learning_rate=1e-6 with a linear decay to 0
    (jaxlm: warmup + cosine to lr/10), AdamW betas (0.9, 0.999) and weight_decay 0 (jaxlm
    `make_optimizer` defaults b2=0.95, weight_decay=0.1; `fit` passes TrainConfig's 0.0),
    bf16=True even on CPU, gradient_checkpointing=True, max_completion_length=512, and HF
    GPT-2's default dropout 0.1 stays on unless disable_dropout=True (jaxlm has no dropout).

Needs the `bench` extra (`pip install -e .[bench]`: trl, torch, transformers).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import tempfile
import time
from typing import Callable
import warnings

# PyTorch's OpenMP workers busy-wait by default; on a shared, oversubscribed CPU that makes its
# multi-threaded kernels collapse (a 2-thread TRL step ran ~30x slower than with this set). Must
# be set before torch is first imported in the process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

P, G, NEW = 8, 8, 3            # prompts per step, completions per prompt, completion tokens
LR = 1e-3                      # 3e-3 collapses both sides onto seed-dependent plateaus
WARMUP = 3                     # untimed first steps of each side
STEPS = 160                    # timed steps of each side (after WARMUP)
BLOCK = 20                     # steps per interleaved block
CURVE_WINDOW = 20              # reward curve points are means over this many steps
SEED = 0

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rl_bench.json")


def _hf_model(vocab: int):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(SEED)
  cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=16, n_embd=64, n_layer=2, n_head=2,
                                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                bos_token_id=1, eos_token_id=None, pad_token_id=0)
  return transformers.GPT2LMHeadModel(cfg)


def _tokenizer(vocab: int):
  """Word-level tokenizer over the bandit ids: "<pad>"=0, "<bos>"=1, "s0".. = 2..; "<eos>" = vocab
  (outside the model's vocabulary, so it is never sampled: the bandit has no stop token)."""
  import tokenizers  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from jaxlm.envs import bandit  # pylint: disable=g-import-not-at-top
  words = {"<pad>": bandit.PAD, "<bos>": bandit.BOS}
  words.update({f"s{i}": bandit.FIRST + i for i in range(vocab - bandit.FIRST)})
  words["<eos>"] = vocab
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(words, unk_token="<pad>"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
  return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                              bos_token="<bos>", eos_token="<eos>",
                                              unk_token="<pad>", padding_side="left")


class Ours:
  """jaxlm GRPO from `params`; `run(n)` -> (seconds, per-step mean rewards)."""

  def __init__(self, cfg, params, task, total_steps: int):
    from jaxlm import config as config_lib  # pylint: disable=g-import-not-at-top
    from jaxlm import train as train_lib  # pylint: disable=g-import-not-at-top
    from jaxlm.algos import pg  # pylint: disable=g-import-not-at-top
    from jaxlm.rl import rollout  # pylint: disable=g-import-not-at-top
    config = pg.Config(
        model=cfg, group_size=G, estimator="grpo", aggregation="token_mean", clip_low=0.2,
        clip_high=0.2, kl_coef=0.0, sampling=rollout.Sampling(max_new_tokens=NEW, temperature=1.0),
        train=config_lib.TrainConfig(num_steps=total_steps, batch_size=P * G, lr=LR, warmup=0,
                                     weight_decay=0.0, clip=1.0, seed=SEED))
    model, init_fn, forward, policy_logits = pg.networks(config, pretrained=params)
    # The same AdamW as TRL's default torch.optim.AdamW: constant lr (final_fraction=1),
    # betas (0.9, 0.999), eps 1e-8, no weight decay, global-norm clip 1.
    optimizer, self.schedule = train_lib.make_optimizer(
        LR, 0, total_steps, clip=1.0, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8,
        final_fraction=1.0)
    self.state = train_lib.TrainState.create(init_fn(jax.random.key(SEED)), optimizer,
                                             jax.random.key(SEED + 1))
    self.rollouts = pg.Rollouts(config, task, model, forward, policy_logits)
    self.step = train_lib.make_train_step(
        pg.make_loss(config, forward), optimizer, schedule=self.schedule,
        prepare_batch=functools.partial(pg.prepare_batch, config))
    self.rewards: list[float] = []

  def run(self, n: int) -> tuple[float, list[float]]:
    jax.block_until_ready(self.state)
    t = time.perf_counter()
    metrics = []
    for _ in range(n):
      batch = self.rollouts(self.state)
      self.state, m = self.step(self.state, batch)
      metrics.append(m)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - t
    got = jax.device_get(metrics)
    assert all(np.isclose(m["learning_rate"], LR, rtol=1e-6) for m in got), (
        "lr schedule is not constant")
    rewards = [float(m["reward"]) for m in got]
    self.rewards += rewards
    return seconds, rewards


def run(steps: int = STEPS, block: int = BLOCK, warmup: int = WARMUP,
        gradient_checkpointing: bool = False) -> list[dict]:
  """Interleaved timing and reward curves; returns rows {name, ours, reference, ratio, unit}."""
  import datasets  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  import trl  # pylint: disable=g-import-not-at-top
  from jaxlm.envs import bandit  # pylint: disable=g-import-not-at-top
  from jaxlm.models import convert, transformer  # pylint: disable=g-import-not-at-top

  if steps % block:
    raise ValueError(f"steps={steps} must be a multiple of block={block}")
  transformers.logging.set_verbosity_error()
  datasets.disable_progress_bars()
  threads = len(os.sched_getaffinity(0))  # XLA's CPU client uses every core it may run on.
  torch.set_num_threads(threads)
  task = bandit.task()
  vocab = bandit.vocab_size()
  hf = _hf_model(vocab)
  cfg, params = convert.from_hf(hf)

  # Same weights, same function: the converted model's logits match HF's.
  probe = np.array([[bandit.BOS, bandit.FIRST, bandit.FIRST + 3, bandit.FIRST + 1]])
  with torch.no_grad():
    want = hf(torch.as_tensor(probe)).logits.numpy()
  got = np.asarray(transformer.Transformer(cfg).apply({"params": params}, probe).logits)
  logit_gap = float(np.abs(got - want).max())
  assert logit_gap < 1e-4, f"converted logits differ from HF by {logit_gap}"

  total = warmup + steps
  ours = Ours(cfg, params, task, total)

  # TRL: the 4 bandit prompts as text, repeated so an epoch holds whole generation batches.
  tok = _tokenizer(vocab)
  names = {v: k for k, v in tok.get_vocab().items()}
  prompts = task.train_prompts
  rows = P * G // len(prompts) * len(prompts)
  index = [i % len(prompts) for i in range(rows)]
  data = datasets.Dataset.from_dict({"prompt": [" ".join(names[t] for t in prompts[i])
                                                for i in index],
                                     "prompt_index": index})
  ref_rewards: list[float] = []

  def bandit_reward(prompts, completions, completion_ids, prompt_index, **kwargs):
    del prompts, completions, kwargs
    r = [task.reward("train", int(i), list(ids)) for i, ids in zip(prompt_index, completion_ids)]
    ref_rewards.append(float(np.mean(r)))
    return r

  times = {"ours": [], "reference": []}

  class Interleave(transformers.TrainerCallback):
    """After TRL's warm-up, and then every `block` TRL steps, times a block of jaxlm steps."""

    def __init__(self):
      self.t0 = None

    def on_step_end(self, args, state, control, **kwargs):
      del args, control, kwargs
      done = state.global_step
      if done < warmup or (done - warmup) % block:
        return
      if done > warmup:
        times["reference"].append(time.perf_counter() - self.t0)
      if done == warmup:
        ours.run(warmup)  # compile
      elif len(times["ours"]) < steps // block:
        times["ours"].append(ours.run(block)[0])
      self.t0 = time.perf_counter()

  out_dir = tempfile.mkdtemp(prefix="rl_bench_trl_")  # TRL needs one; nothing is saved there
  with warnings.catch_warnings():  # transformers 5 renames gradient_checkpointing; TRL passes it
    warnings.simplefilter("ignore", FutureWarning)
    args = trl.GRPOConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, seed=SEED,
        per_device_train_batch_size=P * G, num_generations=G, gradient_accumulation_steps=1,
        max_completion_length=NEW, temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0,
        optim="adamw_torch", beta=0.0, epsilon=0.2, loss_type="dapo", scale_rewards="group",
        num_iterations=1, gradient_checkpointing=gradient_checkpointing, use_vllm=False,
        max_steps=total, logging_strategy="no", save_strategy="no", eval_strategy="no",
        report_to="none", disable_tqdm=True, dataloader_num_workers=0, log_completions=False)
    trainer = trl.GRPOTrainer(model=hf, reward_funcs=bandit_reward, args=args,
                              train_dataset=data, processing_class=tok, callbacks=[Interleave()])
    trainer.train()
  shutil.rmtree(out_dir, ignore_errors=True)
  # The TRL loop ran its last block; the last jaxlm block runs after it.
  while len(times["ours"]) < steps // block:
    times["ours"].append(ours.run(block)[0])
  assert len(ref_rewards) == total and len(ours.rewards) == total, (len(ref_rewards),
                                                                     len(ours.rewards))

  ours_sps = block / np.array(times["ours"])
  ref_sps = block / np.array(times["reference"])
  ratio = float(np.median(ours_sps / ref_sps))
  curve_at = list(range(CURVE_WINDOW, total + 1, CURVE_WINDOW))
  curve = lambda r: [float(np.mean(r[max(0, s - CURVE_WINDOW):s])) for s in curve_at]
  ours_curve, ref_curve = curve(ours.rewards), curve(ref_rewards)
  setup = (f"P{P} x G{G}, {NEW} new tokens, gpt2 2x64 vocab {vocab}, {threads} threads, "
           f"trl {trl.__version__}")
  return [
      {"name": f"grpo_step_steps_per_s ({setup})", "ours": float(np.median(ours_sps)),
       "reference": float(np.median(ref_sps)), "ratio": ratio, "unit": "steps/s",
       "blocks": {"ours": ours_sps.tolist(), "reference": ref_sps.tolist()}},
      {"name": f"grpo_bandit_reward_first_{CURVE_WINDOW}_steps", "ours": ours_curve[0],
       "reference": ref_curve[0], "ratio": ours_curve[0] / max(ref_curve[0], 1e-9),
       "unit": "mean reward"},
      {"name": f"grpo_bandit_reward_last_{CURVE_WINDOW}_steps (of {total})",
       "ours": ours_curve[-1], "reference": ref_curve[-1],
       "ratio": ours_curve[-1] / max(ref_curve[-1], 1e-9), "unit": "mean reward",
       "curve_steps": curve_at, "ours_curve": ours_curve, "reference_curve": ref_curve,
       "initial_logit_gap": logit_gap},
  ]


def write(rows: list[dict], path: str = OUT) -> None:
  """Atomically writes the rows as JSON (temp file in the same directory, then os.replace)."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".rl_bench.", suffix=".json")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(rows, f, indent=2)
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def merge(rows: list[dict], path: str, owns: Callable[[str], bool]) -> list[dict]:
  """Writes `rows` into `path` in place of the rows there whose name `owns` claims (those of
  the same reference, e.g. TRL or tunix), keeping the others; atomic. Returns all rows."""
  kept = []
  if os.path.exists(path):
    with open(path) as f:
      kept = [r for r in json.load(f) if not owns(r["name"])]
  write(kept + rows, path)
  return kept + rows


def main() -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=STEPS, help="timed steps of each side")
  parser.add_argument("--block", type=int, default=BLOCK, help="steps per interleaved block")
  parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed first steps")
  parser.add_argument("--gradient_checkpointing", action="store_true",
                      help="TRL's default (True); off by default here (it only slows TRL)")
  parser.add_argument("--threads", type=int, default=0,
                      help="pin the process to this many cores (both sides; 0 = all allowed)")
  parser.add_argument("--out", default=OUT)
  a = parser.parse_args()
  if a.threads:  # before JAX's CPU client starts: it sizes its thread pool by the affinity
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:a.threads])
  t = time.perf_counter()
  rows = run(a.steps, a.block, a.warmup, a.gradient_checkpointing)
  speed, _, last = rows
  print(f"{speed['name']}: ours {speed['ours']:.2f} {speed['unit']}, TRL "
        f"{speed['reference']:.2f}, ratio {speed['ratio']:.2f}x")
  print("mean reward (window of the last "
        f"{CURVE_WINDOW} steps)\n  step   jaxlm   TRL")
  for s, o, r in zip(last["curve_steps"], last["ours_curve"], last["reference_curve"]):
    print(f"  {s:4d}   {o:.3f}   {r:.3f}")
  merge(rows, a.out, owns=lambda name: not name.startswith("tunix"))
  print(f"wrote {a.out} ({time.perf_counter() - t:.0f} s)")
  return rows


if __name__ == "__main__":
  main()
