"""The experiment end to end: train, search at every budget, select compute-optimally, report."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import jax
import numpy as np

from jaxlm import files
from jaxlm.algos.test_time import budget_forcing, evaluate, models
from jaxlm.algos.test_time.config import Config
from jaxlm.search import compute_optimal


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False
                       ) -> dict[str, dict[int, float]]:
  """Trains the models, runs every strategy at every budget, selects compute-optimally.

  Writes ``results.json`` ({name: {N: accuracy}} for every strategy/selection, plus
  "compute_optimal", "best_single", "best_single_cv" and "gain_over_best_of_n_weighted"),
  ``report.json`` (the same per difficulty bin, best-of-N coverage, PRM label stats, timings),
  ``accuracy.npz`` (per-question accuracy [Q, strategy, N] and difficulty, for paired
  comparisons), and the plots ``accuracy_vs_budget.png`` and ``accuracy_vs_budget_hard.png``
  (bin 0). With ``config.thinking_budgets`` it also writes ``budget_forcing.json``
  (``budget_forcing.budget_forcing_experiment``). With no strategies only that part runs.
  """
  problems = models.problem_sets(config)
  results, policy_params = {}, None
  if config.strategies:
    results, policy_params = search_experiment(config, workdir, resume=resume,
                                               problems=problems)
  if config.thinking_budgets:
    os.makedirs(workdir, exist_ok=True)
    files.write_json(os.path.join(workdir, "budget_forcing.json"),
                     budget_forcing.budget_forcing_experiment(
                         config, workdir, resume=resume, policy_params=policy_params,
                         problems=problems))
  return results


def search_experiment(config: Config, workdir: str, *, resume: bool = False, problems=None
                      ) -> tuple[dict[str, dict[int, float]], Any]:
  """The search part of ``train_and_evaluate``: results.json, report.json and the plots.

  ``problems`` are ``models.problem_sets(config)`` when the caller has them. Returns the
  results and the policy's params.
  """
  t0 = time.perf_counter()
  problems = problems or models.problem_sets(config)
  sampler, greedy, scorer, stats = models.train_models(config, workdir, resume=resume,
                                                       problems=problems)
  val = problems[2]
  prompts = models.question_prompts(val, config.max_len)
  judge = evaluate.Judge(val, prompts.lengths, config.vote_on)
  t1 = time.perf_counter()
  acc, extras = evaluate.evaluate_strategies(config, prompts, judge, sampler, greedy, scorer,
                                             jax.random.PRNGKey(config.seed + 11))
  budgets = sorted(config.budgets)
  names = list(acc)
  acc_QxCxB = np.stack([acc[k] for k in names], axis=1)
  if config.difficulty_samples:  # oracle pass@1 from samples independent of the evaluation
    difficulty = evaluate.run_pool(
        config, prompts, judge, config.difficulty_samples, sampler,
        jax.random.PRNGKey(config.seed + 17), scorer=scorer, rollout=greedy, num_samples=1,
        beam_width=1, num_groups=1).correct.mean(axis=1)
  elif extras["pass1_QxB"] is not None:  # the best-of-N pool itself (biased bins)
    difficulty = extras["pass1_QxB"].mean(axis=1)
  else:
    difficulty = acc_QxCxB.mean(axis=(1, 2))
  ks = np.array([len(p.numbers) for p in val])
  stats["policy_pass1"] = {"all": float(difficulty.mean()),
                           **{f"k={k}": float(difficulty[ks == k].mean()) for k in set(ks)}}
  baseline = "best_of_n_weighted" if "best_of_n_weighted" in names else names[0]
  results = compute_optimal.compute_optimal_report(
      acc_QxCxB, difficulty, names, budgets, baseline=baseline, num_bins=config.num_bins,
      num_folds=config.num_folds, seed=config.seed)
  bins = compute_optimal.difficulty_bins(difficulty, config.num_bins)
  by_bin = {str(k): {name: {int(n): float(acc[name][bins == k, b].mean())
                            for b, n in enumerate(budgets)} for name in names}
            for k in range(config.num_bins)}
  report = {"by_bin": by_bin, "bin_sizes": np.bincount(bins, minlength=config.num_bins).tolist(),
            "bin_mean_pass1": [float(difficulty[bins == k].mean())
                               for k in range(config.num_bins)],
            "best_of_n_coverage": extras["coverage"], "prm_auc": extras["prm_auc"], **stats,
            "search_seconds": extras["seconds"],
            "seconds": {"train": t1 - t0, "search": time.perf_counter() - t1},
            "config": json.loads(json.dumps(dataclasses.asdict(config)))}
  os.makedirs(workdir, exist_ok=True)
  files.write_json(os.path.join(workdir, "results.json"), results)
  files.write_json(os.path.join(workdir, "report.json"), report)
  np.savez(os.path.join(workdir, "accuracy.npz"), names=np.array(names),
           budgets=np.array(budgets), accuracy_QxCxB=acc_QxCxB, difficulty_Q=difficulty)
  compute_optimal.plot_accuracy_vs_budget(results,
                                          os.path.join(workdir, "accuracy_vs_budget.png"),
                                          title="Countdown: accuracy vs budget")
  compute_optimal.plot_accuracy_vs_budget(
      {k: {int(n): v for n, v in c.items()} for k, c in by_bin["0"].items()},
      os.path.join(workdir, "accuracy_vs_budget_hard.png"),
      title="Countdown, hardest bin: accuracy vs budget")
  return results, sampler.params


def results_table(results: dict[str, dict[int, float]]) -> str:
  """Plain-text accuracy table: one row per strategy, one column per budget N."""
  if not results:
    return "(no search strategies run)"
  budgets = sorted(next(iter(results.values())))
  lines = [f"{'strategy':<30}" + "".join(f"{'N=' + str(n):>8}" for n in budgets)]
  lines += [f"{name:<30}" + "".join(f"{curve[n]:>8.3f}" for n in budgets)
            for name, curve in results.items()]
  return "\n".join(lines)
