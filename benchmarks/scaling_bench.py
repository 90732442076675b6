"""D_J(sigma) fits: jaxlm's vmapped jit L-BFGS vs a plain scipy L-BFGS-B loop.

The workload of Rybkin et al. (2025): the 125-start grid fit of
D_J(sigma) = c + (sigma / b)^(-a) (plain MSE) for 1000 seed-bootstrap resamples
of gym_ours (threshold J_5, 7 UTDs; resampled seeds -> isotonic crossing times
-> median normalisation). jaxlm fits all 1000 x 125 starts in one jitted call;
the reference loops `scipy.optimize.minimize(method="L-BFGS-B")` (analytic
gradient, unbounded, as in the qscaled code, at most 100 iterations like ours)
over the same starts and keeps the lowest finite loss. Both run in this process. scipy runs on the first
`num_reference` resamples (all with --full) and its per-resample time is
compared; both must reach the same optimum on those resamples.

    python -m benchmarks.scaling_bench            # ~2-4 min on 2 shared cores
    python -m benchmarks.scaling_bench --full     # scipy on all 1000 (long)

Writes benchmarks/scaling_bench.json: [{name, ours, reference, ratio, unit}].
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import scipy.optimize

from jaxlm.scaling import data, fit, laws, value_rl

NUM_BOOT, THRESHOLD, MAX_ITER = 1000, 4, 100  # MAX_ITER: both sides' cap.


def bootstrap_dataset(num: int = NUM_BOOT, seed: int = 0):
  """(utds, y (num, U)): normalised J_THRESHOLD times per seed resample."""
  runs = data.load_qscaled_zip(data.shared_data_dir() / "qscaled_rybkin2025" /
                               "raw_zips" / "gym_ours.zip")
  thr = value_rl.default_thresholds()
  envs = sorted({k[0] for k in runs})
  utds = np.array(sorted({k[1] for k in runs}))
  times = np.full((num, len(envs), len(utds), len(thr)), np.nan)
  for (env, utd, _, _), arr in runs.items():
    times[:, envs.index(env), int(np.searchsorted(utds, utd))] = \
        value_rl.bootstrap_crossing_times(
            arr[:, 0], arr[:, 1:], thr, num=num, seed=seed,
            scale=1000.0 / data.GYM_MAX_RETURN[env])
  y = np.stack([value_rl.median_normalise(t)[0][:, THRESHOLD] for t in times])
  return utds, y


def _scipy_fit(x, y, starts):
  """Plain loop: L-BFGS-B from every start, lowest finite loss wins."""
  def f(p):
    a, b, c = p
    with np.errstate(all="ignore"):
      u = (x / b) ** (-a)
      r = c + u - y
      la = np.log(x / b)
      grad = 2 * np.mean(r[None] * np.stack([-la * u, a * u / b, np.ones_like(u)]), 1)
    return np.mean(r**2), grad
  best = (np.inf, None)
  for p0 in starts:
    res = scipy.optimize.minimize(f, p0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": MAX_ITER})
    if np.isfinite(res.fun) and np.all(np.isfinite(res.x)) and res.fun < best[0]:
      best = (res.fun, res.x)
  return best


def main(num_reference: int | None = None) -> list[dict]:
  """Runs the benchmark; returns rows {name, ours, reference, ratio, unit}."""
  full = "--full" in sys.argv
  num_reference = NUM_BOOT if full else (num_reference or 25)
  print(f"[scaling_bench] building {NUM_BOOT} seed-bootstrap datasets", flush=True)
  utds, y = bootstrap_dataset()
  starts = fit.grid_starts(laws.POWER_LAW, value_rl.REFERENCE_GRID)
  call = lambda: fit.fit_many(laws.POWER_LAW, utds, y, starts,
                              num_steps=MAX_ITER)
  t0 = time.perf_counter()
  call()
  t_first = time.perf_counter() - t0
  t0 = time.perf_counter()
  params, loss, _ = call()
  t_ours = time.perf_counter() - t0
  print(f"[scaling_bench] jaxlm: {NUM_BOOT} x 125 starts in {t_ours:.2f} s "
        f"({t_first:.2f} s incl. compile)", flush=True)
  ref_loss, ref_params = [], []
  t0 = time.perf_counter()
  for i in range(num_reference):
    l, p = _scipy_fit(utds, y[i], starts)
    ref_loss.append(l)
    ref_params.append(p)
    if i % 5 == 4:
      rate = (i + 1) / (time.perf_counter() - t0)
      print(f"[scaling_bench] scipy {i + 1}/{num_reference} resamples, "
            f"{rate:.2f}/s, ETA {(num_reference - i - 1) / rate:.0f} s", flush=True)
  t_ref = (time.perf_counter() - t0) / num_reference * NUM_BOOT
  ref_loss = np.array(ref_loss)
  ours = np.stack([params[k][:num_reference] for k in "abc"], 1)
  rel_loss = np.max(np.abs(loss[:num_reference] - ref_loss)
                    / np.maximum(ref_loss, 1e-12))
  dparam = np.max(np.abs(ours - np.array(ref_params)))
  same = bool(rel_loss < 1e-4)
  print(f"[scaling_bench] scipy: {t_ref:.1f} s for {NUM_BOOT} (measured on "
        f"{num_reference}); ratio {t_ref / t_ours:.1f}x; same optimum: {same} "
        f"(max relative loss difference {rel_loss:.2e}, max |param diff| {dparam:.2e})")
  rows = [
      {"name": "scaling D_J fit 125 starts x 1000 bootstrap (steady state)",
       "ours": t_ours, "reference": t_ref, "ratio": t_ref / t_ours, "unit": "s"},
      {"name": "scaling D_J fit incl. compile", "ours": t_first,
       "reference": t_ref, "ratio": t_ref / t_first, "unit": "s"},
      {"name": "scaling D_J fit same optimum (max rel. loss diff)",
       "ours": float(rel_loss), "reference": 0.0, "ratio": float(same),
       "unit": "rel"},
  ]
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "scaling_bench.json")
  with open(path, "w") as f:
    json.dump(rows, f, indent=2)
  return rows


if __name__ == "__main__":
  for row in main():
    print(row)
