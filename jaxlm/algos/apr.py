"""Adaptive Parallel Reasoning on Countdown: SoS+ vs APR SFT, evaluation under context caps, RL.

Pan et al. 2025 ("Learning Adaptive Parallel Reasoning with Language Models", APR) compare a
model trained on serial best-first search traces (SoS+) with one trained on the same searches
written as a parent thread that spawns child searches and reads only their outcomes
(`jaxlm.envs.countdown_traces`). A serial trace must fit one context; APR's threads each fit
their own, so at the same per-thread context cap APR solves more (their Fig. 3: 228M
parameters, 4k context, SoS+ 57.3% vs APR 75.5%), and RL on the APR model raises it further
(83.4%). Here, small and on CPU:

1. SFT, one model per format, same problems, model and steps: SoS+ rows are
   "<header>" -> "<search trace>" <eos> (``countdown_search.search_trace``'s search, cut at the
   context cap when longer: the model then learns its first cap tokens); APR rows are the
   parent ("<header>" -> its trace, loss off on the join blocks the orchestrator writes) and
   each child ("<child header>" -> its search). With `child_sft_steps`, both start from a
   model trained on the child rows alone (the smaller searches first).
2. Evaluation with the spawn / join orchestrator (`jaxlm.search.threads.run`, both models: a
   SoS+ model never spawns) on the validation problems: accuracy at each per-thread context
   cap in `caps` and, for APR, at each total-token budget in `total_budgets` (the matched total
   tokens view); per rollout decoded tokens over all threads, longest thread, sequential rounds
   and sequential tokens (the latency proxy), children.
3. RL on the APR model (`jaxlm.algos.pg` with `pg_threads.ThreadRollouts`): G rollouts per
   prompt, binary verifier reward on the parent's answer, one group-relative advantage per
   rollout shared by every token its threads decoded, each token weighted 1 / (tokens the
   rollout decoded) so a rollout counts once however many threads it spawned (the loss is the
   mean over rollouts of the token mean of their threads; "token_mean" aggregation with these
   weights).

results.json: {"sos": row, "apr": row, "apr_rl": row} with row = {"accuracy", "cap",
"mean_total_tokens", "mean_longest_thread", "mean_rounds", "mean_sequential_tokens",
"mean_children", "stops"} at the default cap `context`; for "apr" "gain_over_sos" and for
"apr_rl" "gain_over_apr" (accuracy differences paired per validation problem) with their 95%
half-widths ("..._ci95"); for "apr" and "apr_rl" "child": the child search alone from the pools
the symbolic parent spawns (`child_accuracy`). curves.json holds every evaluated budget (with
each problem's 0/1 outcome); accuracy_vs_tokens.png plots accuracy against mean total tokens
and against sequential tokens for each model.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
from typing import Any, Sequence

from absl import logging
import jax
import numpy as np

from jaxlm import files
from jaxlm import plots
from jaxlm.algos import pg
from jaxlm.algos import pg_threads
from jaxlm.algos import test_time
from jaxlm.algos.test_time import models as test_time_models
from jaxlm.data.batch import RLBatch
from jaxlm.envs import base as envs_base
from jaxlm.envs import countdown
from jaxlm.envs import countdown_search
from jaxlm.envs import countdown_data
from jaxlm.envs import countdown_traces as traces
from jaxlm.search import decoding
from jaxlm.search import threads

FORMATS = ("sos", "apr")
ROWS = FORMATS + ("child",)  # "child": the APR children's rows alone (`child_sft_steps`)


@dataclasses.dataclass(frozen=True)
class Config:
  """An APR run.

  Attributes:
    countdown: problems, the model (`model_config()`; vocabulary and max_len set here), the SFT
      run of both formats (`trace_policy`) and where it starts (`trace_init`: "policy" trains
      the direct-answer policy first with `policy`, as `experiments.search`'s trace policy
      does, and both formats start from it; "scratch" from a random init).
    max_children: APR parent spawns the best max_children open children of the root.
    child_expansions: node budget of each child search.
    sos_expansions: node budget of a SoS+ search.
    context: per-thread context cap (bos + prompt + trace) of SFT rows, RL and the headline
      evaluation; the model's max_len.
    caps: per-thread caps of the evaluation sweep (each <= context).
    total_budgets: total decoded-token budgets of the APR sweep (per-thread cap `context`).
    max_rounds: sequential decode rounds per rollout.
    eval_temperature: 0 decodes greedily.
    eval_problems: validation problems evaluated (the first ones).
    rl: the policy-gradient run on the APR model ("token_mean" aggregation; batch_size =
      prompts x group_size rollouts per step).
    length_buckets: SFT batches draw rows of one length bucket (`RandomBatches`): APR's child
      rows are short, so most of its batches are.
    parent_repeats: each APR parent row appears this many times in the SFT data (its children
      once). A parent is 1 row in 1 + max_children, yet its long root expansion and spawn block
      are the hardest part of the format: with one copy the parent of a 1500-step run wrote
      malformed spawn blocks while the SoS+ model, trained on every batch, learnt the same
      root expansion.
    apr_sft_steps: SFT steps of the APR model (None: `countdown.trace_policy.num_steps`, as
      SoS+). APR's batches are mostly short rows, so matching the formats on compute rather
      than steps gives APR more of them.
    grammar: how every thread writes an edge to a two-number pool
      (`countdown_search.GRAMMARS`): "plain"; "results" (the pool's results and their least
      distance to the target before its label, so "x" or "#<id>" is read off the line: in the
      plain grammar a 2-layer d=64 model labelled every such pool "x"); "marks" (the results,
      those equal to the target marked "."). See experiments/configs/apr.py.
    pair_goals: every search stops at a two-number pool one operation from the target
      (`countdown_search.best_first`): a child then answers from that line instead of opening
      the pool by its id, the fetch the small models failed at (a probe's child: 10 -> 30 of
      89 solvable pools; experiments/configs/apr.py).
    decision_weight: SFT loss weight of the characters that decide a search
      (`traces.decision_positions`: after each result of a two-number pool, its distance and
      label; a parent's spawned ids and the id its answer names), 1 elsewhere; such characters
      are ~5% of a child row.
    decode_chunk: new tokens per decode call of RL rollouts and evaluations
      (`decoding.make_decode(chunk=)`): a child thread ends after ~300 tokens of its ~750-token
      budget and each decode step reads the call's whole KV cache, so calls of 256 tokens (the
      few rows still running re-prefilled) decode an RL step's 128 rollouts 2.6x faster than
      one call per round (experiments/configs/apr.py); None: one call per round.
    child_sft_steps: when > 0, SFT on the APR children's rows alone (best-first searches of
      the pools one operation below the start, so SoS+ searches of the smaller problems) for
      this many steps first, and both formats start from that model: a shared curriculum
      stage (the child's comparison with the target took ~12000 steps to learn in long rows;
      experiments/configs/apr.py).
  """
  countdown: test_time.Config = test_time.Config(strategies=(), num_numbers=(4,),
                                                 max_number=6, min_target=10, max_target=24)
  max_children: int = 4
  child_expansions: int = 20
  sos_expansions: int = 100
  context: int = 768
  caps: tuple[int, ...] = (512, 640, 768)
  total_budgets: tuple[int, ...] = (512, 768, 1024)
  max_rounds: int = 5
  eval_temperature: float = 0.0
  eval_problems: int = 128
  rl: pg.Config = pg.Config(group_size=4, aggregation="token_mean")
  length_buckets: tuple[int, ...] = (256, 512)
  parent_repeats: int = 1
  apr_sft_steps: int | None = None
  grammar: str = "plain"
  pair_goals: bool = False
  decision_weight: float = 1.0
  child_sft_steps: int = 0
  decode_chunk: int | None = 256

  def __post_init__(self):
    if max(self.caps) > self.context:
      raise ValueError(f"apr.Config.caps {self.caps} exceed context={self.context}")
    if self.rl.aggregation != "token_mean":
      raise ValueError("apr.Config.rl.aggregation must be 'token_mean': the per-token weights "
                       f"make it a mean over rollouts; got {self.rl.aggregation!r}")
    if self.parent_repeats < 1:
      raise ValueError(f"apr.Config.parent_repeats={self.parent_repeats} must be >= 1")
    if self.decode_chunk is not None and self.decode_chunk < 1:  # before hours of SFT
      raise ValueError(f"apr.Config.decode_chunk={self.decode_chunk} must be >= 1 (or None)")
    if self.grammar not in countdown_search.GRAMMARS:
      raise ValueError(f"apr.Config.grammar must be one of {countdown_search.GRAMMARS}, got "
                       f"{self.grammar!r}")
    if self.child_sft_steps < 0:
      raise ValueError(f"apr.Config.child_sft_steps={self.child_sft_steps} must be >= 0")
    if self.decision_weight <= 0:
      raise ValueError(f"apr.Config.decision_weight={self.decision_weight} must be > 0")
    if self.rl.estimator == "gae":
      raise ValueError("apr.Config.rl.estimator must be a group estimator, not 'gae'")


def tokenizer():
  return countdown_data.trace_tokenizer()


def _prompt(problem: countdown.Problem) -> str:
  return traces.thread_prompt(problem.target, problem.numbers)


def parent_score(problem: countdown.Problem, parent_text: str) -> float:
  """1.0 when a rollout's parent answers `problem` right (a named child's path counts:
  `traces.answer_text`), else 0.0: the evaluation's score and the RL reward."""
  return float(countdown.verify(problem, traces.answer_text(parent_text))[0])


# ---------------------------------------------------------------------------------------------
# SFT rows.


Row = tuple[list[int], list[float]]  # ids, loss weight per id (0: not trained)


def thread_row(text: str, untrained: Sequence[tuple[int, int]] = (),
               decision_weight: float = 1.0) -> Row:
  """(ids, weights) of one thread text: [bos] + text + [eos]; the prompt (the header line) and
  the character spans `untrained` of `text` (join blocks) are not trained (weight 0), the
  characters that decide a search (`traces.decision_positions`) weigh `decision_weight`, the
  rest 1."""
  tok = tokenizer()
  prompt_len = len(text.split("\n", 1)[0]) + 1
  ids = [tok.bos_id] + tok.encode(text) + [tok.eos_id]
  weights = [0.0] + [float(i >= prompt_len) for i in range(len(text))] + [1.0]
  if decision_weight != 1.0:
    for i in traces.decision_positions(text):
      weights[1 + i] *= decision_weight
  for start, end in untrained:
    weights[1 + start:1 + end] = [0.0] * (end - start)
  if len(ids) != len(weights):
    raise ValueError("thread_row needs a tokenizer with one id per character")
  return ids, weights


def sos_rows(problem: countdown.Problem, config: Config) -> list[Row]:
  """The SoS+ row of a problem: its best-first search trace (`config.sos_expansions` nodes,
  `config.grammar`, `config.pair_goals`)."""
  search = countdown_search.best_first(problem.target, problem.numbers, config.sos_expansions,
                                       pair_goals=config.pair_goals)
  return [thread_row(countdown_search.format_search(search, config.grammar),
                     decision_weight=config.decision_weight)]


def apr_rows(problem: countdown.Problem, config: Config, *, parent: bool = True) -> list[Row]:
  """The APR rows of a problem: the parent (its join block untrained; `parent_repeats`
  copies; none when not `parent`), then each child; every thread in `config.grammar`."""
  trace = traces.apr_trace(problem, config.max_children, config.child_expansions,
                           config.pair_goals)
  text, children = traces.apr_texts(trace, config.grammar)
  untrained = []
  if trace.spawned:
    before = traces.parent_before_spawn(trace, config.grammar)
    untrained = [(len(before), len(traces.join_context(before, trace.outcomes)))]
  row = lambda text, spans=(): thread_row(text, spans, config.decision_weight)
  parents = [row(text, untrained)] * config.parent_repeats if parent else []
  return parents + [row(c) for c in children]


def sft_batch(fmt: str, problems: Sequence[countdown.Problem], config: Config) -> RLBatch:
  """Every row of `problems` of kind `fmt` (`ROWS`: "sos", "apr" or "child")."""
  if fmt == "sos":
    rows = [r for p in problems for r in sos_rows(p, config)]
  elif fmt in ("apr", "child"):
    rows = [r for p in problems for r in apr_rows(p, config, parent=fmt == "apr")]
  else:
    raise ValueError(f"format must be one of {ROWS}, got {fmt!r}")
  cut = sum(len(ids) > config.context for ids, _ in rows)
  logging.info("APR SFT %s: %d rows from %d problems, %d cut at context=%d", fmt, len(rows),
               len(problems), cut, config.context)
  return pg_threads.row_batch(rows, config.context, tokenizer().pad_id)


# ---------------------------------------------------------------------------------------------
# Evaluation.


def evaluate(decode: threads.DecodeFn, problems: Sequence[countdown.Problem],
             budget: threads.Budget, *, seed: int = 0) -> dict[str, Any]:
  """Rollouts of every problem with the spawn / join orchestrator under `budget`; `decode` is
  a model's (`decoding.make_decode`) or a scripted one.

  Returns:
    {"accuracy", "mean_total_tokens", "mean_longest_thread", "mean_rounds",
    "mean_sequential_tokens", "mean_children", "stops": {reason: count}, "solved": 1.0 or 0.0
    per problem}.
  """
  rollouts = threads.run(decode, tokenizer(), traces.APR_THREADS,
                         [_prompt(p) for p in problems], budget, jax.random.key(seed))
  mean = lambda f: float(np.mean([f(r) for r in rollouts]))
  scores = [parent_score(p, r.parent) for p, r in zip(problems, rollouts)]
  return {"accuracy": float(np.mean(scores)),
          "mean_total_tokens": mean(lambda r: r.decoded_tokens),
          "mean_longest_thread": mean(lambda r: r.longest_thread),
          "mean_rounds": mean(lambda r: r.rounds),
          "mean_sequential_tokens": mean(lambda r: r.sequential_tokens),
          "mean_children": mean(lambda r: r.num_children),
          "stops": dict(collections.Counter(r.stop for r in rollouts)), "solved": scores}


def child_accuracy(decode: threads.DecodeFn, problems: Sequence[countdown.Problem],
                   config: Config, *, seed: int = 0) -> dict[str, float]:
  """The child search alone: each problem's children as the symbolic parent spawns them
  (``traces.apr_trace``: exact prompts, whatever the model's parent would write), each decoded
  once under the per-thread cap `config.context`.

  Returns:
    {"children": how many, "solvable": share of their pools that reach the target,
    "solved": share of the solvable pools whose child reports a goal path that verifies,
    "false_goal": share of all children that report a goal path that does not}.
  """
  tok = tokenizer()
  pools = [countdown.Problem(child.start, child.target) for p in problems
           for child in traces.apr_trace(p, config.max_children, config.child_expansions,
                                         config.pair_goals).children]
  prompts = [traces.thread_prompt(q.target, q.numbers) for q in pools]
  ids = [[tok.bos_id] + tok.encode(prompt) for prompt in prompts]
  outs = decode(ids, [config.context - len(i) for i in ids], (tok.eos_id,), jax.random.key(seed))
  claims, solved, solvable = (np.zeros(len(pools), bool) for _ in range(3))
  for i, (q, prompt, out) in enumerate(zip(pools, prompts, outs)):
    text = prompt + tok.decode(out)
    claims[i] = traces.child_outcome(text) is not None
    solved[i] = claims[i] and countdown.verify(q, text)[0]
    solvable[i] = countdown.solve(q) is not None
  share = lambda x: float(np.mean(x)) if len(x) else float("nan")
  return {"children": len(pools), "solvable": share(solvable), "solved": share(solved[solvable]),
          "false_goal": share(claims & ~solved)}


def model_decode(model: Any, params: Any, config: Config) -> threads.DecodeFn:
  """The evaluations' decoder: `config.eval_temperature`, `config.decode_chunk`."""
  return decoding.make_decode(model, params, temperature=config.eval_temperature,
                              pad_id=tokenizer().pad_id, chunk=config.decode_chunk)


def sweep(model: Any, params: Any, problems: Sequence[countdown.Problem], config: Config,
          fmt: str) -> list[dict[str, Any]]:
  """Evaluation rows at each per-thread cap (and, for APR, each total budget)."""
  decode = model_decode(model, params, config)
  run = lambda cap, total: dict(evaluate(
      decode, problems, threads.Budget(config.max_rounds, total, cap),
      seed=config.countdown.seed), cap=cap, total=total)
  rows = [run(cap, config.max_rounds * cap) for cap in config.caps]
  if fmt != "sos":
    rows += [run(config.context, total) for total in config.total_budgets]
  for row in rows:
    logging.info("APR eval %s cap %d total %d: accuracy %.3f, %.0f tokens", fmt, row["cap"],
                 row["total"], row["accuracy"], row["mean_total_tokens"])
  return rows


# ---------------------------------------------------------------------------------------------
# RL.


def thread_task(train: Sequence[countdown.Problem], val: Sequence[countdown.Problem]
                ) -> envs_base.PromptTask:
  """Countdown thread prompts; reward 1 when the parent's answer verifies."""
  tok = tokenizer()
  splits = {"train": list(train), "eval": list(val)}
  encode = lambda ps: [[tok.bos_id] + tok.encode(_prompt(p)) for p in ps]
  reward = lambda split, i, ids: parent_score(splits[split][i], tok.decode(ids))
  return envs_base.PromptTask(train_prompts=encode(train), eval_prompts=encode(val),
                              reward=reward, stop_tokens=(tok.eos_id,), pad_id=tok.pad_id)


# ---------------------------------------------------------------------------------------------
# The experiment.


def _headline(rows: list[dict[str, Any]], config: Config) -> dict[str, Any]:
  return next(r for r in rows if r["cap"] == config.context
              and r["total"] == config.max_rounds * config.context)


def _headlines(curves: dict[str, list[dict[str, Any]]], config: Config
               ) -> dict[str, dict[str, Any]]:
  """results.json's rows: each model at the default cap, with APR's gain over SoS+ and the RL
  model's over APR paired per problem (mean difference and its 95% Student-t half-width)."""
  rows = {name: _headline(r, config) for name, r in curves.items()}
  results = {name: {k: v for k, v in row.items() if k not in ("total", "solved")}
             for name, row in rows.items()}
  for name, base in (("apr", "sos"), ("apr_rl", "apr")):
    if name in rows and base in rows:
      gain, half = envs_base.mean_confidence_interval(
          np.subtract(rows[name]["solved"], rows[base]["solved"]))
      results[name].update({f"gain_over_{base}": gain, f"gain_over_{base}_ci95": half})
  return results


def _model_config(config: Config) -> Any:
  return dataclasses.replace(config.countdown.model_config(), vocab_size=tokenizer().vocab_size,
                             max_len=config.context)


def reinforce(config: Config, params: Any, train_problems: Sequence[countdown.Problem],
              val: Sequence[countdown.Problem], run_dir: str, *, resume: bool = False) -> Any:
  """GRPO (`config.rl`) from an APR model's `params`: orchestrated rollouts of the training
  problems under the headline budget, binary verifier reward, evaluated on `val` (with the
  paired gain over the start, `pg.paired_evaluation`). Returns the policy's params."""
  rl = dataclasses.replace(config.rl, model=_model_config(config))
  model = pg.networks(rl)[0]
  budget = threads.Budget(config.max_rounds, config.max_rounds * config.context, config.context)
  seed = config.countdown.seed
  evaluate_fn = pg.paired_evaluation(lambda p: {k: v for k, v in evaluate(
      model_decode(model, p, config), val, budget, seed=seed).items() if k != "stops"},
                                      run_dir)
  prompts = [_prompt(p) for p in train_problems]
  run = lambda decode, indices, key: threads.run(
      decode, tokenizer(), traces.APR_THREADS, [prompts[i] for i in indices], budget, key)
  rollouts = functools.partial(pg_threads.ThreadRollouts, run=run, tok=tokenizer(),
                               chunk=config.decode_chunk)
  state, _ = pg.train(rl, thread_task(train_problems, val), run_dir, pretrained=params,
                      resume=resume, evaluate_fn=evaluate_fn, rollouts=rollouts,
                      curves=(("reward", "eval/accuracy"), "reward / held-out accuracy"))
  return state.params["policy"]


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False
                       ) -> dict[str, dict[str, Any]]:
  """[SFT on child rows ->] SFT on both formats -> evaluation sweeps -> RL on the APR model ->
  its sweep."""
  if config.context not in config.caps:
    raise ValueError(f"apr.Config.caps {config.caps} must include context={config.context}")
  cd = config.countdown
  train_problems, _, val = test_time_models.problem_sets(cd)
  val = val[:config.eval_problems]
  model_cfg = _model_config(config)
  model = pg.networks(dataclasses.replace(config.rl, model=model_cfg))[0]
  pretrained = test_time_models.trace_start(cd, train_problems, workdir, resume=resume)
  if config.child_sft_steps:
    pretrained = test_time_models.fit_lm(
        os.path.join(workdir, "child"), model_cfg,
        dataclasses.replace(cd.trace_policy, num_steps=config.child_sft_steps),
        sft_batch("child", train_problems, config), resume=resume, pretrained=pretrained,
        length_buckets=config.length_buckets)
  params, curves = {}, {}
  for fmt in FORMATS:
    steps = (config.apr_sft_steps if fmt == "apr" and config.apr_sft_steps
             else cd.trace_policy.num_steps)
    params[fmt] = test_time_models.fit_lm(
        os.path.join(workdir, fmt), model_cfg,
        dataclasses.replace(cd.trace_policy, num_steps=steps),
        sft_batch(fmt, train_problems, config), resume=resume, pretrained=pretrained,
        length_buckets=config.length_buckets)
    curves[fmt] = sweep(model, params[fmt], val, config, fmt)
  params["apr_rl"] = reinforce(config, params["apr"], train_problems, val,
                               os.path.join(workdir, "apr_rl"), resume=resume)
  curves["apr_rl"] = sweep(model, params["apr_rl"], val, config, "apr_rl")
  results = _headlines(curves, config)
  for name in ("apr", "apr_rl"):
    results[name]["child"] = child_accuracy(
        model_decode(model, params[name], config), val, config, seed=cd.seed)
    logging.info("APR %s children from exact pools: %s", name, results[name]["child"])
  files.write_json(os.path.join(workdir, "results.json"), results)
  files.write_json(os.path.join(workdir, "curves.json"), curves)
  if jax.process_index() == 0:
    _plot(curves, config.max_rounds, os.path.join(workdir, "accuracy_vs_tokens.png"))
  return results


def _plot(curves: dict[str, list[dict[str, Any]]], max_rounds: int, path: str) -> None:
  """Accuracy vs tokens, one line per model and sweep: the per-thread caps (solid) and, for
  APR, the total budgets at the context cap (dashed)."""
  plt = plots.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for i, (name, rows) in enumerate(curves.items()):
    by_cap = [r for r in rows if r["total"] == max_rounds * r["cap"]]
    sweeps = (("per-thread cap", "o-", by_cap),
              ("total budget", "s--", [r for r in rows if r not in by_cap]))
    for what, style, sweep_rows in sweeps:
      for ax, key in zip(axes, ("mean_total_tokens", "mean_sequential_tokens")):
        if sweep_rows:
          pts = sorted((r[key], r["accuracy"]) for r in sweep_rows)
          ax.plot(*zip(*pts), style, color=f"C{i}", label=f"{name}, {what}")
  axes[0].set(xlabel="mean decoded tokens, all threads", ylabel="accuracy",
              title="APR vs SoS+: total compute")
  axes[1].set(xlabel="mean sequential tokens (latency)", title="latency")
  axes[0].legend()
  plots.save(fig, path)


def summary(results: dict[str, dict[str, Any]]) -> str:
  """One line per model: accuracy at the context cap, tokens, rounds, paired gains."""
  gain = lambda r: "".join(f"  {k} {r[k]:+.3f} +- {r[k + '_ci95']:.3f}" for k in r
                           if k.startswith("gain_over_") and not k.endswith("_ci95"))
  return "\n".join(f"{name:<7} accuracy {r['accuracy']:.3f} at cap {r['cap']}  tokens "
                   f"{r['mean_total_tokens']:.0f}  sequential {r['mean_sequential_tokens']:.0f}"
                   f"  rounds {r['mean_rounds']:.2f}  children {r['mean_children']:.2f}{gain(r)}"
                   for name, r in results.items())
