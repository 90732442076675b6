"""Emergence-law posterior: blackjax NUTS (jaxlm now) vs the random-walk Metropolis it replaced.

The posterior is the one `jaxlm.scaling.emergence.fit_emergence` samples (Snell et al. 2024
emergence law, 16 synthetic checkpoints with L in [2.05, 3.2] x D in {1e2..1e5}, noise 0.02,
as in experiments/configs/scaling/emergence.py), built once by
`emergence.posterior_start` and `emergence.posterior_log_prob`. Both samplers get the same
budget as the library default:
16 chains x `num_mcmc` = 3000 steps, first half discarded.

- ours: `emergence.sample_posterior`, the library's sampler: `emergence.nuts` (1500
  window-adaptation steps: step size + dense mass matrix, then 1500 NUTS draws per chain,
  tree depth <= 7) vmapped over chains, in the logit of the prior box, one jit.
- reference: the previous sampler (jaxlm before issue 15), re-implemented below: vmapped
  random-walk Metropolis, three pilot rounds that re-fit the Gaussian proposal to the pilot
  draws' covariance and rescale it towards 0.23 acceptance, then the final round, each of
  `num_mcmc` steps (4 x 3000 steps per chain).

Both are compiled once, then timed in interleaved repeats (reference, ours, ...; medians) in
this process. Rows: worst (max over the 6 parameters) rank-normalised split R-hat, worst
(min) bulk ESS, and min-ESS per second of steady-state sampling; plus the seconds per
posterior. R-hat and ESS are computed by the same `emergence.rhat` / `emergence.ess` on the
kept draws of both.

    python -m benchmarks.emergence_bench            # ~3 min on 2 shared cores (load ~9)
    python -m benchmarks.emergence_bench --far      # also the undetermined ("far") posterior
    python -m benchmarks.emergence_bench --coverage # also 5-95% band coverage over 20 seeds
                                                    # (--far --coverage: ~8 min in all)

Writes benchmarks/emergence_bench.json: [{name, ours, reference, ratio, unit}].
"""

from __future__ import annotations

import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import files
from jaxlm.scaling import emergence

TRUE = dict(A=0.6, k=0.02, alpha=1.5, E0=2.0, B=0.25)
DATA = (1e2, 1e3, 1e4, 1e5)
NUM_CHAINS, NUM_MCMC, REPEATS = 16, 3000, 3


def _rwm(log_prob, init_CxP, step_PxP, key, num_steps: int):
  """Vmapped random-walk Metropolis (Metropolis et al. 1953) with proposal theta + L z."""

  def chain(theta0, key):
    def body(carry, key):
      theta, lp = carry
      k_z, k_u = jax.random.split(key)
      prop = theta + step_PxP @ jax.random.normal(k_z, theta.shape)
      lp_prop = log_prob(prop)
      accept = jnp.log(jax.random.uniform(k_u)) < lp_prop - lp
      return ((jnp.where(accept, prop, theta), jnp.where(accept, lp_prop, lp)),
              (jnp.where(accept, prop, theta), accept))

    _, (samples, accepted) = jax.lax.scan(body, (theta0, log_prob(theta0)),
                                          jax.random.split(key, num_steps))
    return samples, jnp.mean(accepted)

  return jax.vmap(chain)(init_CxP, jax.random.split(key, init_CxP.shape[0]))


def _reference_posterior(run, init, scale, key, num_mcmc: int):
  """The previous adaptive procedure around one jitted RWM `run`: kept draws (C, S/2, P)."""
  p = init.shape[1]
  gain = 2.38 / np.sqrt(p)
  step = np.diag(scale * gain * 0.5)
  for _ in range(3):
    samples, acc = run(init, jnp.asarray(step), key)
    flat = np.asarray(samples[:, num_mcmc // 2:]).reshape(-1, p)
    gain *= float(np.clip(np.mean(acc) / 0.23, 0.3, 3.0))
    step = np.linalg.cholesky(np.cov(flat.T) + 1e-10 * np.eye(p)) * gain
    init = samples[:, -1]
    key = jax.random.fold_in(key, 1)
  samples, acc = run(init, jnp.asarray(step), key)
  return np.asarray(samples[:, num_mcmc // 2:]), float(np.mean(acc))


def _summary(samples_CxSxP, seconds: float) -> dict:
  p = samples_CxSxP.shape[-1]
  rhats = [emergence.rhat(samples_CxSxP[..., i]) for i in range(p)]
  esss = [emergence.ess(samples_CxSxP[..., i]) for i in range(p)]
  return {"rhat": max(rhats), "ess": min(esss), "seconds": seconds,
          "ess_per_s": min(esss) / seconds,
          "e0": np.percentile(samples_CxSxP[..., 3], [5, 50, 95]).round(3).tolist()}


def compare(losses, label: str, num_mcmc: int = NUM_MCMC, repeats: int = REPEATS,
            seed: int = 0) -> list[dict]:
  """Interleaved timing and diagnostics of both samplers on one posterior; returns rows."""
  loss_N, data_N, perf_N = emergence.synthetic_points(TRUE, losses, DATA, seed=seed)
  fitted = emergence.fit_emergence(loss_N, data_N, perf_N, num_bootstrap=0, num_mcmc=0)
  law = emergence.emergence_law()
  with jax.enable_x64(True):
    theta_hat, scale = emergence.posterior_start(law, fitted.mle, fitted.noise_sigma,
                                                 fitted.prior_box)
    log_prob = emergence.posterior_log_prob(law, (loss_N, data_N), perf_N, theta_hat,
                                            fitted.prior_box)
    p = theta_hat.shape[0]
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed + 1))
    init = theta_hat + scale * jax.random.normal(k_init, (NUM_CHAINS, p))
    rwm = jax.jit(functools.partial(_rwm, log_prob, num_steps=num_mcmc))
    nuts = functools.partial(
        emergence.sample_posterior, x=(loss_N, data_N), perf_N=perf_N,
        theta_hat_P=jnp.asarray(theta_hat), box=jnp.asarray(fitted.prior_box), scale_P=scale,
        law=law, num_warmup=num_mcmc // 2, num_samples=num_mcmc - num_mcmc // 2)
    t0 = time.perf_counter()
    jax.block_until_ready(rwm(init, jnp.eye(p) * 0.01, k_run))
    t_compile_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(nuts(init, key=k_run))
    t_compile_ours = time.perf_counter() - t0
    print(f"[emergence_bench] {label}: first call (compile + run) RWM {t_compile_ref:.1f} s, "
          f"NUTS {t_compile_ours:.1f} s", flush=True)
    ref, ours = [], []
    for r in range(repeats):
      key = jax.random.fold_in(k_run, r + 1)
      t0 = time.perf_counter()
      samples, acc_ref = _reference_posterior(rwm, init, scale, key, num_mcmc)
      ref.append(_summary(samples, time.perf_counter() - t0))
      t0 = time.perf_counter()
      samples, acc_ours, div = jax.device_get(nuts(init, key=key))
      ours.append(_summary(samples, time.perf_counter() - t0))
      print(f"[emergence_bench] {label} repeat {r + 1}/{repeats}: RWM {ref[-1]} "
            f"(acceptance {acc_ref:.2f}) | NUTS {ours[-1]} (acceptance "
            f"{float(np.mean(acc_ours)):.2f}, {int(np.sum(div))} divergent)", flush=True)
  med = lambda runs, k: float(np.median([run[k] for run in runs]))
  name = f"emergence posterior ({label}), {NUM_CHAINS} chains x {num_mcmc} steps, NUTS vs RWM"
  rows = [
      {"name": f"{name}: max R-hat", "ours": med(ours, "rhat"),
       "reference": med(ref, "rhat"), "unit": "R-hat"},
      {"name": f"{name}: min bulk ESS", "ours": med(ours, "ess"),
       "reference": med(ref, "ess"), "unit": "draws"},
      {"name": f"{name}: min bulk ESS per second", "ours": med(ours, "ess_per_s"),
       "reference": med(ref, "ess_per_s"), "unit": "draws/s"},
      {"name": f"{name}: seconds per posterior (steady state)", "ours": med(ours, "seconds"),
       "reference": med(ref, "seconds"), "unit": "s"},
      {"name": f"{name}: first call incl. compile", "ours": t_compile_ours,
       "reference": t_compile_ref + med(ref, "seconds") * 3 / 4, "unit": "s"},
  ]
  for row in rows:
    row["ratio"] = row["ours"] / row["reference"] if row["reference"] else None
  return rows


def coverage(num_seeds: int = 20, num_chains: int = 8, num_mcmc: int = 1000) -> list[dict]:
  """Fraction of noise seeds whose 5-95% E0 posterior band contains the truth (nominal 0.9)."""
  hits = {"ours": [], "reference": []}
  law = emergence.emergence_law()
  t0 = time.perf_counter()
  for seed in range(num_seeds):
    loss_N, data_N, perf_N = emergence.synthetic_points(TRUE, np.linspace(2.05, 3.2, 16),
                                                        DATA, seed=100 + seed)
    res = emergence.fit_emergence(loss_N, data_N, perf_N, num_bootstrap=0,
                                  num_chains=num_chains, num_mcmc=num_mcmc, seed=seed)
    hits["ours"].append(res.e0_posterior[0] < TRUE["E0"] < res.e0_posterior[2])
    with jax.enable_x64(True):
      theta_hat, scale = emergence.posterior_start(law, res.mle, res.noise_sigma,
                                                   res.prior_box)
      log_prob = emergence.posterior_log_prob(law, (loss_N, data_N), perf_N, theta_hat,
                                              res.prior_box)
      k_init, k_run = jax.random.split(jax.random.PRNGKey(seed + 1))
      init = theta_hat + scale * jax.random.normal(k_init, (num_chains, theta_hat.shape[0]))
      run = jax.jit(functools.partial(_rwm, log_prob, num_steps=num_mcmc))
      samples, _ = _reference_posterior(run, init, scale, k_run, num_mcmc)
    lo, hi = np.percentile(samples[..., 3], [5, 95])
    hits["reference"].append(lo < TRUE["E0"] < hi)
    rate = (seed + 1) / (time.perf_counter() - t0)
    print(f"[emergence_bench] coverage seed {seed + 1}/{num_seeds}: NUTS band "
          f"{np.round(res.e0_posterior, 3).tolist()} RWM [{lo:.3f}, {hi:.3f}]; "
          f"{rate:.2f} seeds/s, ETA {(num_seeds - seed - 1) / rate:.0f} s", flush=True)
  ours, ref = float(np.mean(hits["ours"])), float(np.mean(hits["reference"]))
  return [{"name": f"emergence 5-95% E0 band covers the truth ({num_seeds} seeds, "
                   f"{num_chains} chains x {num_mcmc} steps; nominal 0.9)",
           "ours": ours, "reference": ref, "ratio": ours / ref if ref else None,
           "unit": "fraction"}]


def main() -> list[dict]:
  """Runs the benchmark; returns rows {name, ours, reference, ratio, unit}."""
  print(f"[emergence_bench] load: {os.getloadavg()}", flush=True)
  rows = compare(np.linspace(2.05, 3.2, 16), "near")
  if "--far" in sys.argv:
    rows += compare(np.linspace(2.8, 3.6, 16), "far", repeats=1)
  if "--coverage" in sys.argv:
    rows += coverage()
  print(f"[emergence_bench] load: {os.getloadavg()}", flush=True)
  files.write_json(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "emergence_bench.json"), rows)
  return rows


if __name__ == "__main__":
  for row in main():
    print(row)
