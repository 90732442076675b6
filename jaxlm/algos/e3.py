"""e3 on Countdown: SFT on attempt chains, then RL in a coupled curriculum, with ablations.

Setlur et al. 2025 ("e3: Learning to Explore Enables Extrapolation of Test-Time Compute for
LLMs") train a model to explore in context and show that (1) chaining generation with
verification, (2) negative gradients in RL and (3) a curriculum that couples difficulty with
the token budget make accuracy keep rising past the training budget. Here, small and on CPU:

1. SFT: a character policy learns traces of 1..`max_attempts` attempts (uniform, or with a
   constant chance `retry` of one more), each followed by its exact verdict
   (`jaxlm.envs.countdown_attempts`), on the training problems; a `give_up` share of them fail
   every attempt and end "No solution.", a `miscount` share of the failed attempts are
   arithmetic errors ("verify invalid").
2. RL (`jaxlm.algos.pg`, binary verifier reward, group-relative advantages) once per
   `advantage_mode` in `modes`: "full" keeps the negative gradients of failed traces,
   "positive_only" drops them (the paper's ablation). Traces are sampled by
   `jaxlm.search.threads.interleave`: with `env_verdicts` the environment writes each verdict
   when the policy starts one (exact verification; only the policy's tokens are trained).
   Training runs through `stages` of (difficulty = starting numbers, steps); each stage's
   token budget is the smallest of `budgets` whose truncation rate on `probe_problems`
   sampled traces is at most `truncation_threshold` (`jaxlm.rl.curriculum.plan`), probed with
   the policy the stage starts from.
3. Evaluation on the validation problems at the last stage's budget (1x) and at twice it (2x,
   extrapolation): pass@1 of sampled traces, mean attempts started, mean completion tokens.
   Every budget samples with the same key, so with a `decode_chunk` the 2x traces repeat the
   1x draws until the first trace reaches the 1x budget (the batch then changes shape): the
   gain 2x - 1x is measured per problem, with a 95% Student-t interval over problems.

results.json: {"sft": row, "<mode>": row, ...} (the SFT policy evaluated at the first mode's
final budget) with row = {"accuracy_at_1x", "accuracy_at_2x", "gain_2x" and "gain_2x_ci95"
(its mean over problems and interval half-width), "mean_attempts", "mean_length", "give_up",
"false_goal", "truncated", "malformed" (how traces end), "budget", "stage_budgets",
"by_budget" (pass@1, attempts, length at each of `budget_multiples`)}; each mode's RL runs
and their metrics (pass@1, attempts, length and endings every `rl.eval_every` batches) under
`<mode>/stage<i>/`; accuracy_vs_budget.png, attempts_curve.png. `across_runs` reads several
finished workdirs (e.g. RL seeds) into means and sd's.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Sequence

from absl import logging
import jax
import numpy as np

from jaxlm import files
from jaxlm import metrics as metrics_lib
from jaxlm import plots
from jaxlm.algos import pg
from jaxlm.algos import pg_threads
from jaxlm.algos import test_time
from jaxlm.algos.test_time import models as test_time_models
from jaxlm.data.batch import RLBatch
from jaxlm.envs import base as envs_base
from jaxlm.envs import countdown
from jaxlm.envs import countdown_attempts
from jaxlm.envs import countdown_data
from jaxlm.envs.base import PromptTask
from jaxlm.rl import curriculum
from jaxlm.search import decoding
from jaxlm.search import threads


@dataclasses.dataclass(frozen=True)
class Config:
  """An e3 run.

  Attributes:
    countdown: problems (num_numbers lists every difficulty the stages use), the model
      (`model_config()`: vocab set here to the trace alphabet), the SFT run (`trace_policy`)
      and where it starts (`trace_init`: "policy" from the direct-answer policy trained first
      with `policy`, "scratch" from a random init).
    max_attempts: SFT traces hold 1..max_attempts attempts, the last one solved.
    retry: None: the number of attempts is uniform over 1..max_attempts. A share r: k
      attempts with probability proportional to r^(k-1) (after each attempt another one
      follows with the same chance r), so no attempt count marks where SFT traces stop: with
      the uniform draw every trace ends by attempt max_attempts, and a policy that learned
      that stops there at any budget (no extrapolation).
    give_up: share of SFT traces that instead end with "No solution." after their attempts
      all fail (a policy that sometimes stops early: what negative gradients push against).
    miscount: share of SFT failed attempts that are arithmetic errors ("verify invalid"; the
      rest are near misses and slips): the policy's own errors are mostly of this kind, and
      with `env_verdicts` a policy that never saw "verify invalid" in SFT loses its way after
      one.
    sft_max_len: SFT row buffer (prompt + trace); longer traces are dropped.
    length_buckets: SFT batches draw rows of one length bucket (`RandomBatches`), so short
      rows are not padded to sft_max_len.
    env_verdicts: the environment writes every verdict (and, after a goal, the answer) when the
      policy starts a verdict line: perfect verification, the paper's didactic setting
      (`countdown_attempts.env_verdict`; loss off on what it writes). False: the policy writes
      its own verdicts, as in SFT.
    decode_chunk: new tokens per decode call (`decoding.make_decode(chunk=)`): attempts end
      after ~50 tokens, so a short chunk keeps each call's KV cache small (benchmarks/
      interleave_bench.py); None: one call per segment.
    rl: the policy-gradient algorithm; `rl.train.num_steps` is replaced by each stage's steps
      and `rl.sampling.max_new_tokens` by its budget.
    modes: advantage modes to train, one RL run each from the same SFT policy.
    stages: (difficulty, steps) per stage, in order.
    budgets: candidate token budgets of the curriculum.
    truncation_threshold: the largest share of probe traces a stage's budget may truncate.
    probe_problems: training problems of the stage's difficulty sampled to choose its budget.
    eval_samples: sampled traces per validation problem in the final evaluation.
    budget_multiples: budgets of the final evaluation, as multiples of the last stage's
      budget (must include 1 and 2: the headline 1x and 2x).
  """
  countdown: test_time.Config = test_time.Config(strategies=(), num_numbers=(3, 4))
  max_attempts: int = 3
  retry: float | None = None
  give_up: float = 0.0
  miscount: float = 0.0
  sft_max_len: int = 320
  length_buckets: tuple[int, ...] = ()
  env_verdicts: bool = True
  decode_chunk: int | None = 64
  rl: pg.Config = pg.Config()
  modes: tuple[str, ...] = ("full", "positive_only")
  stages: tuple[tuple[int, int], ...] = ((3, 50), (4, 50))
  budgets: tuple[int, ...] = (64, 128, 192, 256)
  truncation_threshold: float = 0.2
  probe_problems: int = 64
  eval_samples: int = 4
  budget_multiples: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)

  def __post_init__(self):
    unknown = {d for d, _ in self.stages} - set(self.countdown.num_numbers)
    if unknown:
      raise ValueError(f"e3.Config.stages use difficulties {sorted(unknown)} that "
                       f"countdown.num_numbers={self.countdown.num_numbers} does not generate")
    if self.max_attempts < 1 or not self.budgets or not self.modes or not self.stages:
      raise ValueError("e3.Config needs max_attempts >= 1, budgets, modes and stages")
    if not {1.0, 2.0} <= set(self.budget_multiples):
      raise ValueError(f"e3.Config.budget_multiples={self.budget_multiples} must include 1 "
                       "and 2")
    for name in ("give_up", "miscount"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"e3.Config.{name}={getattr(self, name)} must be a share in [0, 1]")
    if self.retry is not None and not 0.0 <= self.retry < 1.0:
      raise ValueError(f"e3.Config.retry={self.retry} must be None or a share in [0, 1)")


def sft_batch(problems: Sequence[countdown.Problem], max_attempts: int, max_len: int,
              seed: int, give_up: float = 0.0, miscount: float = 0.0,
              retry: float | None = None) -> RLBatch:
  """Rows "<prompt>" -> "<attempt chain>" <eos> with 1..max_attempts attempts (uniform, or
  with `retry` r: k with probability proportional to r^(k-1)), the last one solved, or with
  probability `give_up` all failed and "No solution."; a `miscount` share of failed attempts
  are arithmetic errors; rows longer than max_len are dropped."""
  tok, rng = countdown_data.trace_tokenizer(), np.random.default_rng(seed)
  counts = np.arange(1, max_attempts + 1)
  weights = None if retry is None else retry ** (counts - 1.0)
  if weights is not None:
    weights /= weights.sum()
  rows = []
  for p in problems:
    attempts = int(rng.integers(1, max_attempts + 1) if weights is None
                   else rng.choice(counts, p=weights))
    solve = rng.random() >= give_up
    text = countdown_attempts.attempts_trace(p, attempts, rng, solve_last=solve,
                                             miscount=miscount)
    row = (countdown_data.encode_prompt(tok, p), tok.encode(text) + [tok.eos_id])
    if len(row[0]) + len(row[1]) <= max_len:
      rows.append(row)
  if not rows:
    raise ValueError(f"no attempt trace of {len(problems)} problems fits max_len={max_len}")
  logging.info("e3 SFT: %d of %d traces fit max_len=%d", len(rows), len(problems), max_len)
  return countdown_data.lm_batch(rows, max_len, tok.pad_id)


def attempts_task(train: Sequence[countdown.Problem], val: Sequence[countdown.Problem]
                  ) -> PromptTask:
  """Countdown with the trace tokenizer: reward 1 when the trace's answer verifies."""
  tok = countdown_data.trace_tokenizer()
  splits = {"train": list(train), "eval": list(val)}
  reward = lambda split, i, ids: float(countdown.verify(splits[split][i], tok.decode(ids))[0])
  return PromptTask(
      train_prompts=[countdown_data.encode_prompt(tok, p) for p in train],
      eval_prompts=[countdown_data.encode_prompt(tok, p) for p in val], reward=reward,
      stop_tokens=(tok.eos_id,), pad_id=tok.pad_id)


def sample_traces(decode: threads.DecodeFn, problems: Sequence[countdown.Problem], budget: int,
                  key: jax.Array, env_verdicts: bool) -> list[threads.Rollout]:
  """One trace per problem of at most `budget` tokens after the prompt; with `env_verdicts`
  the policy decides when an attempt ends (it starts a verdict line) and the environment
  writes the verdict (`countdown_attempts.env_verdict`), else the policy writes everything."""
  tok = countdown_data.trace_tokenizer()
  env = dict(trigger=countdown_attempts.VERDICT_START,
             respond=lambda i, text: countdown_attempts.env_verdict(problems[i], text))
  return threads.interleave(decode, tok, [countdown_data.prompt_text(p) for p in problems],
                            budget, key, **(env if env_verdicts else {}))


def rollout_stats(decode: threads.DecodeFn, problems: Sequence[countdown.Problem], budget: int,
                  samples: int, seed: int, env_verdicts: bool) -> dict[str, Any]:
  """Samples `samples` traces of every problem with at most `budget` tokens each (`decode`:
  the policy, `decoding.make_decode`).

  Returns:
    {"pass@1", "mean_attempts", "mean_length" (tokens after the prompt, the environment's
    included), "give_up" (share of traces ending "No solution."), "false_goal" (share ending on
    a goal verdict their attempt does not earn: near 0 when the environment writes verdicts),
    "truncated" (share that hit the budget), "malformed" (share whose policy started a verdict
    where none can be), "lengths" (inf for a truncated trace), "solved" (1.0 per solved trace;
    rows are each problem `samples` times in a row)}.
  """
  tok = countdown_data.trace_tokenizer()
  rows = [p for p in problems for _ in range(samples)]
  rollouts = sample_traces(decode, rows, budget, jax.random.key(seed), env_verdicts)
  texts = [r.parent[len(countdown_data.prompt_text(p)):] for p, r in zip(rows, rollouts)]
  lengths = np.array([len(r.thread_ids[0]) - len(countdown_data.encode_prompt(tok, p))
                      for p, r in zip(rows, rollouts)], np.float64)
  truncated = np.array([r.stop in threads.BUDGET_STOPS for r in rollouts])
  solved = np.array([countdown.verify(p, t)[0] for p, t in zip(rows, texts)], np.float64)
  return {"pass@1": float(np.mean(solved)),
          "mean_attempts": float(np.mean([countdown_attempts.count_attempts(t) for t in texts])),
          "mean_length": float(np.mean(lengths)),
          "give_up": float(np.mean([t.endswith(countdown_attempts.GIVE_UP) for t in texts])),
          "false_goal": float(np.mean([countdown_attempts.false_goal(p, t)
                                       for p, t in zip(rows, texts)])),
          "truncated": float(np.mean(truncated)),
          "malformed": float(np.mean([r.stop == "malformed" for r in rollouts])),
          "lengths": np.where(truncated, np.inf, lengths), "solved": solved}


def _scalars(stats: dict[str, Any]) -> dict[str, float]:
  return {k: v for k, v in stats.items() if k not in ("lengths", "solved")}


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False
                       ) -> dict[str, dict[str, Any]]:
  """SFT -> RL per mode through the stages -> evaluation at 1x and 2x (module docstring)."""
  cd = config.countdown
  train_problems, _, val = test_time_models.problem_sets(cd)
  longest = int(max(config.budget_multiples) * max(config.budgets))
  model_cfg = dataclasses.replace(cd.model_config(),
                                  vocab_size=countdown_data.trace_tokenizer().vocab_size,
                                  max_len=longest + cd.max_len)
  sft = test_time_models.fit_lm(
      os.path.join(workdir, "sft"), model_cfg, cd.trace_policy,
      sft_batch(train_problems, config.max_attempts, config.sft_max_len, cd.trace_policy.seed,
                config.give_up, config.miscount, config.retry),
      resume=resume, pretrained=test_time_models.trace_start(cd, train_problems, workdir,
                                                              resume=resume),
      length_buckets=config.length_buckets)
  rl = dataclasses.replace(config.rl, model=model_cfg)
  temperature = rl.sampling.temperature  # the probe and every evaluation sample as RL does
  model = pg.networks(rl)[0]
  tok = countdown_data.trace_tokenizer()
  stats = lambda p, problems, budget, samples, seed: rollout_stats(
      decoding.make_decode(model, p, temperature=temperature, pad_id=tok.pad_id,
                           chunk=config.decode_chunk), problems,
      budget, samples, seed, config.env_verdicts)
  by_difficulty = {d: [p for p in train_problems if len(p.numbers) == d]
                   for d, _ in config.stages}

  def final(params, budget, stage_budgets):  # the evaluation at each budget multiple
    raw = {k: stats(params, val, int(k * budget), config.eval_samples, cd.seed + 1)
           for k in config.budget_multiples}
    at = {k: _scalars(v) for k, v in raw.items()}
    gain, half = envs_base.mean_confidence_interval(  # per problem, 2x - 1x
        (raw[2]["solved"] - raw[1]["solved"]).reshape(len(val), -1).mean(1))
    return {"accuracy_at_1x": at[1]["pass@1"], "accuracy_at_2x": at[2]["pass@1"],
            "gain_2x": gain, "gain_2x_ci95": half, "mean_attempts": at[1]["mean_attempts"],
            "mean_length": at[1]["mean_length"], "give_up": at[1]["give_up"],
            "false_goal": at[1]["false_goal"], "truncated": at[1]["truncated"],
            "malformed": at[1]["malformed"], "budget": budget, "stage_budgets": stage_budgets,
            "by_budget": [dict(v, budget=int(k * budget)) for k, v in at.items()]}

  results, curves = {}, {}
  for mode in config.modes:
    params, stage_budgets, rows = sft, [], []
    for i, (difficulty, steps) in enumerate(config.stages):
      problems = by_difficulty[difficulty]
      probe_fn = lambda stage, cap: stats(params, problems[:config.probe_problems], cap, 1,
                                          cd.seed)["lengths"]
      stage, = curriculum.plan([curriculum.Stage(difficulty, steps)], probe_fn,
                               config.budgets, config.truncation_threshold)
      stage_budgets.append(stage.budget)
      logging.info("e3 %s stage %d: difficulty %d, budget %d", mode, i, difficulty,
                   stage.budget)
      stage_rl = dataclasses.replace(
          rl, advantage_mode=mode, sampling=dataclasses.replace(
              rl.sampling, max_new_tokens=stage.budget),
          train=dataclasses.replace(rl.train, num_steps=steps))
      run = lambda decode, idx, key, ps=problems, b=stage.budget: sample_traces(
          decode, [ps[j] for j in idx], b, key, config.env_verdicts)
      run_dir = os.path.join(workdir, mode, f"stage{i}")
      evaluate_fn = lambda p, b=stage.budget: _scalars(stats(p, val, b, 1, cd.seed))
      state, _ = pg.train(stage_rl, attempts_task(problems, val), run_dir, pretrained=params,
                          resume=resume, evaluate_fn=evaluate_fn,
                          rollouts=functools.partial(pg_threads.ThreadRollouts, run=run,
                                                     tok=tok, per_rollout=False,
                                                     chunk=config.decode_chunk))
      params = state.params["policy"]
      rows += [dict(r, stage=i) for r in metrics_lib.read_metrics(run_dir)
               if "eval/mean_attempts" in r]
    results[mode] = final(params, stage_budgets[-1], stage_budgets)
    curves[mode] = rows
    logging.info("e3 %s: %s", mode, results[mode])
  # SFT at the first mode's final budget (the curriculum run's 1x), the RL rows' reference.
  results = {"sft": final(sft, results[config.modes[0]]["budget"], []), **results}
  logging.info("e3 sft: %s", results["sft"])
  files.write_json(os.path.join(workdir, "results.json"), results)
  if jax.process_index() == 0:
    _plot(results, curves, workdir)
  return results


def _plot(results: dict[str, dict[str, Any]], curves: dict[str, list[dict[str, float]]],
          workdir: str) -> None:
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for mode, row in results.items():
    ax.plot([r["budget"] for r in row["by_budget"]], [r["pass@1"] for r in row["by_budget"]],
            "o-", label=mode)
  ax.axvline(next(iter(results.values()))["budget"], color="gray", ls=":", lw=1)
  ax.set(xlabel="token budget (dotted: the training budget)", ylabel="pass@1",
         title="e3 on Countdown: extrapolation")
  ax.legend()
  plots.save(fig, os.path.join(workdir, "accuracy_vs_budget.png"))
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  for mode, rows in curves.items():
    if rows:
      x = np.arange(len(rows))
      axes[0].plot(x, [r["eval/mean_attempts"] for r in rows], "o-", label=mode)
      axes[1].plot(x, [r["eval/mean_length"] for r in rows], "o-", label=mode)
  axes[0].set(xlabel="evaluation (over stages)", ylabel="mean attempts")
  axes[1].set(xlabel="evaluation (over stages)", ylabel="mean trace tokens")
  axes[0].legend()
  plots.save(fig, os.path.join(workdir, "attempts_curve.png"))


_FINAL_KEYS = ("accuracy_at_1x", "accuracy_at_2x", "gain_2x", "mean_attempts", "mean_length",
               "give_up", "truncated")


def across_runs(workdirs: Sequence[str]) -> dict[str, dict[str, tuple[float, float]]]:
  """Mean and sd (ddof 1; 0 for one run) over finished runs, e.g. RL seeds from one SFT policy
  (`--config.rl.train.seed=S --resume`), of each mode's headline numbers: the final
  evaluation's `_FINAL_KEYS` (results.json) and, per stage i, the first and last evaluation
  during RL ("stage<i>/<mean_attempts|mean_length|give_up>/<first|last>")."""
  values: dict[str, dict[str, list[float]]] = {}
  for workdir in workdirs:
    for mode, row in files.read_json(os.path.join(workdir, "results.json")).items():
      out = values.setdefault(mode, {})
      for k in _FINAL_KEYS:
        out.setdefault(k, []).append(row[k])
      for i in range(len(row["stage_budgets"])):
        evals = [r for r in metrics_lib.read_metrics(os.path.join(workdir, mode, f"stage{i}"))
                 if "eval/mean_attempts" in r]
        if not evals:
          raise ValueError(f"{workdir}: {mode} stage {i} has no evaluation during RL")
        for k in ("mean_attempts", "mean_length", "give_up"):
          for when, r in (("first", evals[0]), ("last", evals[-1])):
            out.setdefault(f"stage{i}/{k}/{when}", []).append(r[f"eval/{k}"])
  counts = {len(v) for out in values.values() for v in out.values()}
  if len(counts) > 1:
    raise ValueError(f"across_runs: the runs in {list(workdirs)} differ in modes or stages")
  return {mode: {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
                 for k, v in out.items()} for mode, out in values.items()}


def summary(results: dict[str, dict[str, Any]]) -> str:
  """One line per mode: accuracy at 1x and 2x, attempts, length, how traces end."""
  return "\n".join(f"{mode:<14} acc@1x {r['accuracy_at_1x']:.3f}  acc@2x {r['accuracy_at_2x']:.3f}"
                   f" (gain {r['gain_2x']:+.3f} +- {r['gain_2x_ci95']:.3f})"
                   f"  attempts {r['mean_attempts']:.2f}  tokens {r['mean_length']:.1f}"
                   f"  give-up {r['give_up']:.2f}  false goal {r['false_goal']:.2f}"
                   f"  budgets {r['stage_budgets']}" for mode, r in results.items())
