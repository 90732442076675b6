"""Figures of training runs: learning curves and beta sweeps (PNG out).

matplotlib is imported on first use and its backend is left to matplotlib (headless machines
fall back to Agg by themselves), so importing jaxlm changes no global plotting state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import os

from jaxlm import metrics as metrics_lib


def pyplot():
  """`matplotlib.pyplot`, imported lazily."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save(fig, path: str, dpi: int = 100) -> None:
  """Writes `fig` to `path` and closes it."""
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  pyplot().close(fig)


def plot_learning_curve(rows: list[Mapping[str, float]], path: str,
                        keys: tuple[str, ...] = ("loss", "eval/loss"),
                        ylabel: str = "loss (nats/token)") -> None:
  """Learning curve (one line per metric key present in `rows`) as a PNG."""
  fig, ax = pyplot().subplots(figsize=(6, 4))
  for key in keys:
    pts = [(r["step"], r[key]) for r in rows if key in r]
    if pts:
      ax.plot(*zip(*pts), marker="." if key.startswith("eval") else None, label=key)
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  if ax.lines:
    ax.legend()
  save(fig, path)


def plot_beta_sweep(sweeps: dict[str, list[dict[str, float]]], path: str, title: str) -> None:
  """Normalised score (with 95% CI) against beta, one line per algorithm."""
  fig, ax = pyplot().subplots(figsize=(5, 3.5))
  for algo, rows in sweeps.items():
    rows = sorted(rows, key=lambda r: r["beta"])
    x = [max(r["beta"], 0.1) for r in rows]
    ax.errorbar(x, [r["normalized"] for r in rows], [r["normalized_ci"] or 0.0 for r in rows],
                marker="o", capsize=3, label=algo)
  ax.set_xscale("log")
  ax.set_xlabel("beta (0 plotted at 0.1)")
  ax.set_ylabel("normalized score")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  save(fig, path)


def plot_learning_curves(workdir: str, names: Sequence[str], path: str,
                         keys: tuple[str, ...] = ("loss", "bc_loss", "q_loss", "v_loss")
                         ) -> None:
  """Training losses of each run (`<workdir>/<name>/metrics.jsonl`), one panel per run.

  A run's panel shows its total loss and each other key of `keys` it logged.
  """
  fig, axes = pyplot().subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
  for ax, name in zip(axes[0], names):
    run_dir = os.path.join(workdir, name)
    if not os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
      continue
    rows = metrics_lib.read_metrics(run_dir)
    for key in keys:
      pts = [(r["step"], r[key]) for r in rows if key in r]
      if pts:
        ax.plot(*zip(*pts), label=key)
    ax.set_yscale("log")
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
  save(fig, path)
