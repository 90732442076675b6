"""D_J(sigma) fits: jaxlm's vmapped jit solvers (LM and L-BFGS) vs a plain scipy L-BFGS-B loop.

The workload of Rybkin et al. (2025): the 125-start grid fit of
D_J(sigma) = c + (sigma / b)^(-a) (plain MSE) for 1000 seed-bootstrap resamples
of gym_ours (threshold J_5, 7 UTDs; resampled seeds -> isotonic crossing times
-> median normalisation). jaxlm fits all 1000 x 125 starts in one jitted call, once with
its default damped Gauss-Newton solver (solver="lm", the "auto" choice for least squares)
and once with L-BFGS (solver="lbfgs"); the reference loops
`scipy.optimize.minimize(method="L-BFGS-B")` (analytic gradient, unbounded, as in the
qscaled code, at most 100 iterations like ours) over the same starts and keeps the lowest
finite loss. All run in this process. scipy runs on the first `num_reference` resamples and
L-BFGS on the first 200 (all 1000 with --full); their per-resample times are scaled to 1000.
Each solver must reach scipy's optimum on the reference resamples (|relative loss
difference| <= 1e-6).

    python -m benchmarks.scaling_bench            # ~3-5 min on 2 shared cores
    python -m benchmarks.scaling_bench --full     # scipy on all 1000 (long)

Writes benchmarks/scaling_bench.json: [{name, ours, reference, ratio, unit}].

Measured 2026-12-04 (`python -m benchmarks.scaling_bench`, 2-core AMD EPYC, no other job but a
paused one): LM 3.10 s steady state (4.41 s incl. compile) vs scipy 404 s for 1000 resamples
(measured on 25): 130x (92x incl. compile); L-BFGS 59.0 s: 6.8x; both at scipy's optimum
(relative loss difference <= 9.5e-12).
"""

from __future__ import annotations

import json
import os
import sys
import time

# The scipy loop makes thousands of tiny BLAS calls; threaded OpenBLAS spends most of its
# time waking threads (14x slower CPU on a loaded 2-core machine). Single-threaded BLAS is
# the fair reference; this only takes effect if numpy is not imported yet (run this module
# directly, not through benchmarks.run, or export the variable).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import scipy.optimize  # pylint: disable=wrong-import-position

from jaxlm.scaling import data, fit, laws, value_rl  # pylint: disable=wrong-import-position

NUM_BOOT, THRESHOLD, MAX_ITER = 1000, 4, 100  # MAX_ITER: both sides' cap.
SAME_OPTIMUM = 1e-6  # max |relative loss difference| to scipy on the reference resamples.


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


def _time_ours(utds, y, starts, solver: str):
  """(seconds incl. compile, steady-state seconds, params, loss) of one fit_many call on y.

  Times are scaled to NUM_BOOT resamples when y has fewer rows.
  """
  call = lambda: fit.fit_many(laws.POWER_LAW, utds, y, starts, num_steps=MAX_ITER,
                              solver=solver)
  t0 = time.perf_counter()
  call()
  t_first = time.perf_counter() - t0
  t0 = time.perf_counter()
  params, loss, _ = call()
  t_ours = time.perf_counter() - t0
  print(f"[scaling_bench] jaxlm {solver}: {len(y)} x {len(starts)} starts in {t_ours:.2f} s "
        f"({t_first:.2f} s incl. compile)", flush=True)
  scale = NUM_BOOT / len(y)
  params_KxP = np.stack([params[k] for k in "abc"], 1)
  return t_first - t_ours + scale * t_ours, scale * t_ours, params_KxP, loss


def main(num_reference: int | None = None) -> list[dict]:
  """Runs the benchmark; returns rows {name, ours, reference, ratio, unit}."""
  full = "--full" in sys.argv
  num_reference = NUM_BOOT if full else (num_reference or 25)
  # L-BFGS takes ~1 min per 1000 resamples on a quiet machine: timed on the first 200
  # (scaled; all with --full). LM always fits all 1000.
  num_lbfgs = NUM_BOOT if full else max(200, num_reference)
  print(f"[scaling_bench] building {NUM_BOOT} seed-bootstrap datasets "
        f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')})", flush=True)
  utds, y = bootstrap_dataset()
  starts = fit.grid_starts(laws.POWER_LAW, value_rl.REFERENCE_GRID)
  ours = {"lm": _time_ours(utds, y, starts, "lm"),
          "lbfgs": _time_ours(utds, y[:num_lbfgs], starts, "lbfgs")}
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
  rows = []
  for solver, (t_first, t_ours, params_KxP, loss) in ours.items():
    # Signed: > 0 where ours ends above scipy. Same optimum: |difference| <= 1e-6 relative.
    rel = (loss[:num_reference] - ref_loss) / np.maximum(ref_loss, 1e-12)
    worst = float(np.max(np.abs(rel)))
    dparam = np.max(np.abs(params_KxP[:num_reference] - np.array(ref_params)))
    same = bool(worst <= SAME_OPTIMUM)
    print(f"[scaling_bench] {solver}: scipy {t_ref:.1f} s for {NUM_BOOT} (measured on "
          f"{num_reference}); ratio {t_ref / t_ours:.1f}x; same optimum: {same} (relative loss "
          f"difference in [{rel.min():.2e}, {rel.max():.2e}], max |param diff| {dparam:.2e})")
    name = f"scaling D_J fit 125 starts x 1000 bootstrap, {solver} vs scipy"
    rows += [
        {"name": f"{name} (steady state)", "ours": t_ours, "reference": t_ref,
         "ratio": t_ref / t_ours, "unit": "s"},
        {"name": f"{name} incl. compile", "ours": t_first, "reference": t_ref,
         "ratio": t_ref / t_first, "unit": "s"},
        {"name": f"{name} same optimum (max |rel. loss diff|)", "ours": worst,
         "reference": 0.0, "ratio": float(same), "unit": "rel"},
    ]
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "scaling_bench.json")
  with open(path, "w") as f:
    json.dump(rows, f, indent=2)
  return rows


if __name__ == "__main__":
  for row in main():
    print(row)
