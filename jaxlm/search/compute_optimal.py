"""Compute-optimal test-time strategy selection (Snell, Lee, Xu, Kumar 2024).

For a budget N and a question of estimated difficulty, pick the search strategy (and its
hyperparameters) that did best on held-out questions of the same difficulty bin. Difficulty is
any per-question score where higher means easier: oracle pass@1 from many samples, or the
verifier's mean score when no ground truth is available. Selection is cross-validated with
k folds so that a question never helps choose its own strategy.

Inputs are a table ``acc_QxCxB``: expected accuracy of question q under candidate strategy c at
budget b (e.g. correctness averaged over seeds).
"""

from typing import Sequence

import numpy as np

from jaxlm import plots


def difficulty_bins(difficulty_Q: np.ndarray, num_bins: int) -> np.ndarray:
  """Equal-count quantile bins; bin 0 holds the lowest scores (the hardest questions).

  Args:
    difficulty_Q: per-question score, higher is easier.
    num_bins: number of bins (Snell et al. use 5).

  Returns:
    int array [Q] of bins in [0, num_bins); ties are broken by question index.
  """
  difficulty_Q = np.asarray(difficulty_Q)
  if difficulty_Q.ndim != 1 or not 1 <= num_bins <= len(difficulty_Q):
    raise ValueError(f"need a 1-d difficulty and 1 <= num_bins <= Q, got shape "
                     f"{difficulty_Q.shape} and num_bins={num_bins}")
  rank_Q = np.argsort(np.argsort(difficulty_Q, kind="stable"), kind="stable")
  return (rank_Q * num_bins // len(difficulty_Q)).astype(np.int32)


def _check_table(acc_QxCxB, bins_Q):
  acc_QxCxB = np.asarray(acc_QxCxB, np.float64)
  if acc_QxCxB.ndim != 3:
    raise ValueError(f"acc_QxCxB must be [Q, C, B], got shape {acc_QxCxB.shape}")
  if np.shape(bins_Q) != acc_QxCxB.shape[:1]:
    raise ValueError(f"bins_Q shape {np.shape(bins_Q)} does not match Q={acc_QxCxB.shape[0]}")
  return acc_QxCxB


def select_strategies(acc_QxCxB: np.ndarray, bins_Q: np.ndarray, num_bins: int,
                      mask_Q: np.ndarray | None = None) -> np.ndarray:
  """Best strategy per (bin, budget) by mean accuracy over the masked questions.

  Bins without masked questions fall back to the best strategy over all masked questions;
  ties go to the lowest strategy index.

  Returns:
    int array [num_bins, B] of strategy indices.
  """
  acc_QxCxB = _check_table(acc_QxCxB, bins_Q)
  mask_Q = np.ones(len(bins_Q), bool) if mask_Q is None else np.asarray(mask_Q, bool)
  if not mask_Q.any():
    raise ValueError("select_strategies needs at least one question in mask_Q")
  sums_KxCxB = np.zeros((num_bins,) + acc_QxCxB.shape[1:])
  np.add.at(sums_KxCxB, np.asarray(bins_Q)[mask_Q], acc_QxCxB[mask_Q])
  counts_K = np.bincount(np.asarray(bins_Q)[mask_Q], minlength=num_bins)
  overall_CxB = acc_QxCxB[mask_Q].mean(axis=0)
  means_KxCxB = np.where(counts_K[:, None, None] > 0,
                         sums_KxCxB / np.maximum(counts_K, 1)[:, None, None], overall_CxB)
  return np.argmax(means_KxCxB, axis=1)


def compute_optimal_accuracy(acc_QxCxB: np.ndarray, bins_Q: np.ndarray, num_bins: int,
                             num_folds: int = 5, seed: int = 0
                             ) -> tuple[np.ndarray, np.ndarray]:
  """Cross-validated accuracy of the per-bin compute-optimal selector.

  Args:
    acc_QxCxB: accuracy table.
    bins_Q: difficulty bins (``difficulty_bins``).
    num_bins: number of bins.
    num_folds: k; questions are shuffled with ``seed`` and split into k folds; each fold is
      scored with strategies chosen on the other folds.
    seed: fold assignment seed.

  Returns:
    (acc_B, choices_FxKxB): mean held-out accuracy per budget, and each fold's choices.
  """
  acc_QxCxB = _check_table(acc_QxCxB, bins_Q)
  q = acc_QxCxB.shape[0]
  if not 2 <= num_folds <= q:
    raise ValueError(f"num_folds must be in [2, Q={q}], got {num_folds}")
  fold_Q = np.empty(q, np.int32)
  fold_Q[np.random.default_rng(seed).permutation(q)] = np.arange(q) % num_folds
  held_QxB = np.zeros((q, acc_QxCxB.shape[2]))
  choices = []
  for f in range(num_folds):
    best_KxB = select_strategies(acc_QxCxB, bins_Q, num_bins, fold_Q != f)
    test = np.flatnonzero(fold_Q == f)
    chosen_TxB = best_KxB[np.asarray(bins_Q)[test]]
    held_QxB[test] = np.take_along_axis(acc_QxCxB[test], chosen_TxB[:, None, :], axis=1)[:, 0]
    choices.append(best_KxB)
  return held_QxB.mean(axis=0), np.stack(choices)


def compute_optimal_report(acc_QxCxB: np.ndarray, difficulty_Q: np.ndarray,
                           strategies: Sequence[str], budgets: Sequence[int], *,
                           baseline: str = "best_of_n", num_bins: int = 5, num_folds: int = 5,
                           seed: int = 0) -> dict[str, dict[int, float]]:
  """Accuracy vs budget of every strategy, the compute-optimal selector and its references.

  Args:
    acc_QxCxB: accuracy table, strategies along C and budgets along B.
    difficulty_Q: per-question difficulty score (higher is easier).
    strategies: C names.
    budgets: B budgets N.
    baseline: name in ``strategies`` to compare against (best-of-N in Snell et al.).
    num_bins, num_folds, seed: as in ``difficulty_bins`` and ``compute_optimal_accuracy``.

  Returns:
    {name: {N: accuracy}} with every strategy, "compute_optimal" (cross-validated),
    "best_single" (best single strategy per budget, chosen in-sample: an upper reference),
    "best_single_cv" (one strategy per budget chosen on the same training folds without bins:
    what the selector must beat for binning to pay) and "gain_over_<baseline>"
    (compute_optimal minus the baseline).
  """
  acc_QxCxB = np.asarray(acc_QxCxB, np.float64)
  if acc_QxCxB.shape[1:] != (len(strategies), len(budgets)):
    raise ValueError(f"acc_QxCxB shape {acc_QxCxB.shape} does not match {len(strategies)} "
                     f"strategies and {len(budgets)} budgets")
  if baseline not in strategies:
    raise ValueError(f"baseline {baseline!r} is not one of {list(strategies)}")
  bins_Q = difficulty_bins(difficulty_Q, num_bins)
  optimal_B, _ = compute_optimal_accuracy(acc_QxCxB, bins_Q, num_bins, num_folds, seed)
  single_cv_B, _ = compute_optimal_accuracy(acc_QxCxB, np.zeros_like(bins_Q), 1, num_folds,
                                            seed)
  per_CxB = acc_QxCxB.mean(axis=0)
  as_dict = lambda v_B: {int(n): float(v) for n, v in zip(budgets, v_B)}
  out = {name: as_dict(per_CxB[c]) for c, name in enumerate(strategies)}
  out["compute_optimal"] = as_dict(optimal_B)
  out["best_single"] = as_dict(per_CxB.max(axis=0))
  out["best_single_cv"] = as_dict(single_cv_B)
  out[f"gain_over_{baseline}"] = as_dict(optimal_B - per_CxB[list(strategies).index(baseline)])
  return out


def plot_accuracy_vs_budget(results: dict[str, dict[int, float]], path: str,
                            title: str = "accuracy vs test-time budget") -> None:
  """Log-x line plot of {name: {N: accuracy}} (gain entries skipped), saved to ``path``."""
  fig, ax = plots.pyplot().subplots(figsize=(6, 4))
  for name, curve in results.items():
    if name.startswith("gain_over_"):
      continue
    budgets = sorted(curve)
    style = dict(lw=2.5, color="black") if name == "compute_optimal" else dict(lw=1.2)
    ax.plot(budgets, [curve[n] for n in budgets], marker="o", label=name, **style)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("budget N (samples / beams)")
  ax.set_ylabel("accuracy")
  ax.set_title(title)
  ax.legend(fontsize=8)
  plots.save(fig, path)
