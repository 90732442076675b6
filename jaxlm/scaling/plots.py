"""Figures for the scaling fits (separate from the math; PNG out, or the figure when no path)."""

from __future__ import annotations

import numpy as np

from jaxlm.plots import pyplot

from jaxlm.scaling import emergence as emergence_lib
from jaxlm.scaling import laws


def _save(fig, path):
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
  return fig


def plot_data_efficiency(result, path=None, title: str = ""):
  """Normalised steps-to-threshold vs UTD with the fitted D_J(sigma) curves.

  Rybkin et al. (2025) Fig. "data efficiency": one colour per threshold J;
  bands are pointwise 5-95% of the seed-bootstrap curves when available.
  """
  fit = result.fit
  sig = np.logspace(np.log10(result.utds.min()), np.log10(result.utds.max()), 100)
  curves = fit.predict(sig)
  plt = pyplot()
  colors = plt.cm.viridis(np.linspace(0, 1, len(fit.thresholds)))
  fig, ax = plt.subplots(figsize=(6, 4.5))
  for j, thr in enumerate(fit.thresholds):
    ax.plot(result.utds, result.normalised_UxJ[:, j], "o", color=colors[j], ms=4)
    ax.plot(sig, curves[j], "-", color=colors[j], label=f"J={thr:.0f}")
    if result.bootstrap is not None:
      boot = {n: result.bootstrap[k][:, j, None]
              for n, k in (("a", "alpha"), ("b", "beta"), ("c", "d_min"))}
      lo, hi = np.nanpercentile(laws.POWER_LAW.fn(boot, sig[None]), [5, 95], 0)
      ax.fill_between(sig, lo, hi, color=colors[j], alpha=0.15, lw=0)
  ax.set(xscale="log", yscale="log", xlabel="UTD sigma",
         ylabel="env steps to J / median", title=title or "D_J(sigma)")
  ax.legend(fontsize=6, ncol=2)
  return _save(fig, path)


def plot_pareto(result, path=None, title: str = ""):
  """Data-compute frontier per threshold, budget-optimal points, sigma*(F)."""
  b = result.budget
  plt = pyplot()
  colors = plt.cm.viridis(np.linspace(0, 1, len(b.sigma_star)))
  fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
  for j in range(len(b.sigma_star)):
    ax.plot(b.data_JxU[j], b.compute_JxU[j], "-", color=colors[j])
    ax.plot(b.data_star[j], b.compute_star[j], "*", color=colors[j], ms=10)
  ax.set(xscale="log", yscale="log", xlabel="data D (env steps)",
         ylabel="compute C (FLOPs)", title=title or "Pareto frontier")
  star = result.sigma_star
  n = len(b.sigma_star) - len(star["heldout_rel_error"])
  ax2.plot(b.budget_star[:n], b.sigma_star[:n], "o", label="fitted")
  ax2.plot(b.budget_star[n:], b.sigma_star[n:], "s", mfc="none", label="held out")
  f = np.logspace(np.log10(b.budget_star.min()), np.log10(b.budget_star.max()), 50)
  ax2.plot(f, star["coef"] * f ** star["exponent"], "k--",
           label=f"{star['coef']:.3g} F^{star['exponent']:.3f}")
  ax2.set(xscale="log", yscale="log", xlabel="budget F = C + delta D",
          ylabel="sigma*", title="budget-optimal UTD")
  ax2.legend(fontsize=8)
  return _save(fig, path)


def plot_chinchilla(n_params, n_tokens, loss, result, path=None):
  """Observed loss vs tokens coloured by model size, with iso-N fitted curves."""
  n_params, n_tokens = np.asarray(n_params), np.asarray(n_tokens)
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6, 4.5))
  sc = ax.scatter(n_tokens, loss, c=np.log10(n_params), s=8, cmap="plasma")
  d = np.logspace(np.log10(n_tokens.min()), np.log10(n_tokens.max()), 100)
  for n in np.quantile(n_params, [0.1, 0.5, 0.9]):
    pred = laws.CHINCHILLA.fn(result.params, (np.full_like(d, np.log(n)),
                                              np.log(d)))
    ax.plot(d, pred, "-", color="k", lw=1)
  p = result.params
  ax.set(xscale="log", xlabel="tokens D", ylabel="loss",
         title=f"E={p['E']:.2f} A={p['A']:.0f} B={p['B']:.0f} "
               f"alpha={p['alpha']:.3f} beta={p['beta']:.3f}")
  fig.colorbar(sc, label="log10 N")
  return _save(fig, path)


def plot_emergence(loss_N, data_N, perf_N, result, path=None):
  """Accuracy vs pretraining loss per D with fitted ReLUs, and E(D) with band."""
  loss_N, data_N = np.asarray(loss_N), np.asarray(data_N)
  ds = np.unique(data_N)
  plt = pyplot()
  colors = plt.cm.viridis(np.linspace(0, 1, len(ds)))
  fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
  grid = np.linspace(loss_N.min(), loss_N.max(), 200)
  form, d0 = result.form, result.d0
  law = emergence_lib.emergence_law(form, d0, result.chance)
  for d, c in zip(ds, colors):
    m = data_N == d
    ax.plot(loss_N[m], np.asarray(perf_N)[m], "o", color=c, ms=3)
    ax.plot(grid, law.fn(result.mle.params, (grid, np.full_like(grid, d))),
            color=c, label=f"D={d:.3g}")
    ax.axvline(emergence_lib.emergence_point(result.mle.params, d, form, d0),
               color=c, ls=":", lw=0.8)
  ax.invert_xaxis()
  ax.set(xlabel="pretraining loss L", ylabel="accuracy", title="ReLU fits")
  ax.legend(fontsize=7)
  dd = np.logspace(np.log10(d0), np.log10(ds.max()), 60)
  ax2.plot(dd, emergence_lib.emergence_point(result.mle.params, dd, form, d0),
           "k-", label="MLE")
  if result.posterior is not None:
    idx = np.random.default_rng(0).choice(len(result.posterior["E0"]), 400)
    sub = {k: v[idx, None] for k, v in result.posterior.items()}
    e = emergence_lib.emergence_point(sub, dd[None], form, d0)
    ax2.fill_between(dd, *np.percentile(e, [5, 95], axis=0), alpha=0.3,
                     label="5-95% posterior")
  ax2.set(xscale="log", xlabel="finetuning data D", ylabel="emergence point E(D)",
          title=f"E(D0={d0:g}) = {result.e0_mle:.3f}"
                + ("" if result.determined else " (undetermined)"))
  ax2.legend(fontsize=8)
  return _save(fig, path)
