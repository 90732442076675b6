"""Emergence laws (Snell, Wallace, Klein, Levine 2024, "Predicting Emergent
Capabilities by Finetuning").

For each amount of finetuning data D, downstream accuracy against pretraining
loss L is a ReLU with its elbow at the point of emergence E(D):

    Perf(L, D) = A * relu(E(D) - L) + B          (B = chance floor)

and the emergence law moves the elbow with D:

    E(D) = k * (log D)^alpha + C      (form "log_power", the paper's law)
    E(D) = k * D^alpha + C            (form "power", the ablation).

The few-shot prediction is E(D0) at a small D0 (> 1). We fit the law through
E0 = E(D0) directly, E(D) = E0 + k * (g(D)^alpha - g(D0)^alpha) with g = log or
identity, so the quantity of interest is a parameter (C = E0 - k g(D0)^alpha).

Estimation: joint Gaussian maximum likelihood over all (checkpoint, D) points
(least squares through `fit.fit`, multi-start damped Gauss-Newton), bootstrap over points,
and a vmapped random-walk Metropolis sampler (written here, no extra
dependency) over the unconstrained parameters and log noise, with a uniform
prior box on E0 spanning the observed losses widened by their range. When the
data cannot locate the elbow (only far-from-emergence checkpoints) the posterior
fills the prior box and `EmergenceResult.determined` is False.
"""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.scaling import fit as fit_lib

FORMS = ("log_power", "power")


@functools.lru_cache(maxsize=None)
def emergence_law(form: str = "log_power", d0: float = 10.0,
                  chance: float | None = None) -> fit_lib.Law:
  """Law Perf(x = (L_N, D_N)) with params A, k, alpha, E0 (and B if chance None).

  Args:
    form: "log_power" (E = k log(D)^alpha + C) or "power" (E = k D^alpha + C).
    d0: low-data limit D0 (> 1) at which E0 = E(D0) is reported.
    chance: fixed chance accuracy B; None fits B.
  """
  if form not in FORMS:
    raise ValueError(f"form must be one of {FORMS}, got {form!r}.")
  if d0 <= 1.0:
    raise ValueError(f"d0 must be > 1 (log D0 > 0), got {d0}.")
  g = jnp.log if form == "log_power" else (lambda d: d)

  def fn(p, x):
    loss_N, d_N = x
    e_N = p["E0"] + p["k"] * (g(d_N) ** p["alpha"] - g(d0) ** p["alpha"])
    floor = chance if chance is not None else p["B"]
    return p["A"] * jax.nn.relu(e_N - loss_N) + floor

  names = ("A", "k", "alpha", "E0") + (("B",) if chance is None else ())
  # g(D)^alpha needs g(D) > 0: D > 1 for log_power, D > 0 for power.
  inputs = (("loss", None), ("data", 1.0 if form == "log_power" else 0.0))
  return fit_lib.Law(f"emergence_{form}", fn, names, ("A", "k", "alpha"), inputs)


def synthetic_points(params, losses, data, *, noise: float = 0.02,
                     form: str = "log_power", d0: float = 10.0, seed: int = 0):
  """(loss_N, data_N, perf_N) on the (checkpoint x D) grid from the law + noise.

  Args:
    params: A, k, alpha, E0, B of the law.
    losses: checkpoint pretraining losses.
    data: finetuning data amounts D.
    noise: Gaussian noise standard deviation on accuracy.
    form, d0: as in `emergence_law`.
    seed: numpy seed of the noise.
  """
  loss_N, d_N = (a.ravel() for a in np.meshgrid(losses, data))
  e_N = emergence_point(params, d_N, form, d0)
  perf_N = params["A"] * np.maximum(e_N - loss_N, 0.0) + params["B"]
  rng = np.random.default_rng(seed)
  return loss_N, d_N, perf_N + noise * rng.standard_normal(loss_N.size)


def emergence_point(params, d, form: str = "log_power", d0: float = 10.0):
  """E(D) from fitted params (dict of floats or arrays)."""
  g = np.log if form == "log_power" else (lambda v: v)
  return params["E0"] + params["k"] * (g(np.asarray(d, np.float64)) ** params["alpha"]
                                       - g(d0) ** params["alpha"])


@dataclasses.dataclass(frozen=True)
class EmergenceResult:
  """MLE, bootstrap and posterior summaries of the few-shot emergence point.

  Attributes:
    mle: FitResult of the least-squares (= Gaussian MLE) fit.
    noise_sigma: MLE noise standard deviation.
    e0_mle: predicted emergence point E(D0) (nats of pretraining loss).
    e0_bootstrap: (low, median, high) over bootstrap resamples.
    e0_posterior: (low, median, high) of the MCMC posterior.
    posterior: name -> flat posterior samples (natural units).
    acceptance: mean Metropolis acceptance rate.
    prior_box: (low, high) uniform prior on E0.
    determined: the posterior band is narrower than `max_band` and does not
      touch the prior box; False means "the data cannot tell".
  """

  mle: fit_lib.FitResult
  noise_sigma: float
  e0_mle: float
  e0_bootstrap: tuple[float, float, float] | None
  e0_posterior: tuple[float, float, float] | None
  posterior: dict[str, np.ndarray] | None
  acceptance: float
  prior_box: tuple[float, float]
  determined: bool
  form: str = "log_power"
  d0: float = 10.0
  chance: float | None = None

  def to_json(self) -> dict:
    """Fitted parameters with intervals and the emergence summaries."""
    out = self.mle.to_json()
    out.update(noise_sigma=self.noise_sigma, e0_mle=self.e0_mle,
               e0_bootstrap=self.e0_bootstrap, e0_posterior=self.e0_posterior,
               acceptance=None if self.posterior is None else self.acceptance,  # strict JSON
               prior_box=self.prior_box,
               determined=self.determined, form=self.form, d0=self.d0,
               chance=self.chance)
    return out


def _starts(law: fit_lib.Law, loss_N, perf_N, chance):
  """Grid of starts spanning the observed losses for E0."""
  lo, hi = float(np.min(loss_N)), float(np.max(loss_N))
  span = max(perf_N.max() - perf_N.min(), 1e-3) / max(hi - lo, 1e-3)
  grid = {"A": (span, 4 * span), "k": (0.01, 0.1), "alpha": (0.5, 1.5),
          "E0": tuple(np.linspace(lo - 0.25 * (hi - lo), hi, 6)),
          "B": (float(np.min(perf_N)),)}
  return fit_lib.grid_starts(law, {n: grid[n] for n in law.param_names})


def random_walk_metropolis(log_prob, init_CxP, step_PxP, num_steps: int, key):
  """Vmapped random-walk Metropolis (Metropolis et al. 1953).

  Args:
    log_prob: `theta_P -> scalar` (unnormalised, -inf outside the support).
    init_CxP: one start per chain.
    step_PxP: proposal Cholesky factor (proposal = theta + step @ z).
    num_steps: iterations per chain.
    key: PRNG key.

  Returns:
    (samples (C, num_steps, P), acceptance rate per chain (C,)).
  """
  chex.assert_rank([init_CxP, step_PxP], 2)

  def chain(theta0, key):
    def body(carry, key):
      theta, lp = carry
      kz, ku = jax.random.split(key)
      prop = theta + step_PxP @ jax.random.normal(kz, theta.shape)
      lp_prop = log_prob(prop)
      accept = jnp.log(jax.random.uniform(ku)) < lp_prop - lp
      theta = jnp.where(accept, prop, theta)
      lp = jnp.where(accept, lp_prop, lp)
      return (theta, lp), (theta, accept)

    keys = jax.random.split(key, num_steps)
    _, (samples, acc) = jax.lax.scan(body, (theta0, log_prob(theta0)), keys)
    return samples, jnp.mean(acc)

  keys = jax.random.split(key, init_CxP.shape[0])
  return jax.vmap(chain)(init_CxP, keys)


def fit_emergence(loss_N, data_N, perf_N, *, form: str = "log_power",
                  d0: float = 10.0, chance: float | None = None,
                  num_bootstrap: int = 200, num_chains: int = 16,
                  num_mcmc: int = 3000, seed: int = 0, interval: float = 0.9,
                  max_band: float = 0.5, num_steps: int = 200
                  ) -> EmergenceResult:
  """Fits the emergence law jointly over all (checkpoint, D) points.

  Args:
    loss_N: pretraining loss of each point's checkpoint.
    data_N: finetuning data amount D of each point (> 1 for log_power, > 0 for power).
    perf_N: downstream accuracy.
    form: "log_power" or "power" (see module docstring).
    d0: low-data limit for the few-shot prediction E(D0).
    chance: known chance accuracy (fixed floor B); None fits B.
    num_bootstrap: point-bootstrap resamples (0 = none).
    num_chains, num_mcmc: Metropolis chains and steps per chain (0 = none);
      the first half of every chain is discarded.
    seed: key for bootstrap and MCMC.
    interval: central mass of the reported bands (0.9 = 5-95%).
    max_band: widest E0 band (nats) still called determined.
    num_steps: solver iterations (`fit`, solver "auto": damped Gauss-Newton).

  Returns:
    EmergenceResult.
  """
  loss_N, data_N, perf_N = (np.asarray(a, np.float64)
                            for a in (loss_N, data_N, perf_N))
  chex.assert_equal_shape([loss_N, data_N, perf_N])
  chex.assert_rank(loss_N, 1)
  law = emergence_law(form, float(d0), chance)
  x = (loss_N, data_N)
  res = fit_lib.fit(law, x, perf_N, _starts(law, loss_N, perf_N, chance),
                    num_steps=num_steps, num_bootstrap=num_bootstrap,
                    bootstrap_starts=4, seed=seed, interval=interval)
  sigma = float(np.sqrt(max(res.loss, 1e-12)))
  q = 100 * (1 - interval) / 2
  band = lambda v: tuple(float(p) for p in np.nanpercentile(v, [q, 50, 100 - q]))
  e0_boot = band(res.bootstrap["E0"]) if num_bootstrap else None
  spread = np.ptp(loss_N)
  box = (float(loss_N.min() - spread), float(loss_N.max() + spread))
  post = e0_post = None
  acc = float("nan")
  if num_mcmc:
    post, acc = _posterior(law, x, perf_N, res, sigma, box, num_chains,
                           num_mcmc, seed)
    e0_post = band(post["E0"])
  ref = e0_post or e0_boot
  determined = True
  if ref is not None:
    margin = 0.05 * (box[1] - box[0])
    determined = (ref[2] - ref[0] < max_band and ref[0] > box[0] + margin
                  and ref[2] < box[1] - margin)
  return EmergenceResult(res, sigma, res.params["E0"], e0_boot, e0_post, post,
                         acc, box, bool(determined), form, float(d0), chance)


def _posterior(law, x, perf_N, res, sigma, box, num_chains, num_mcmc, seed):
  """Random-walk Metropolis around the MLE; returns samples and acceptance."""
  obj = fit_lib.make_objective(law)
  n = perf_N.shape[0]
  i_e0 = law.param_names.index("E0")
  theta_hat = np.array([np.log(res.params[k]) if k in law.positive
                        else res.params[k] for k in law.param_names]
                       + [np.log(sigma)])
  p = theta_hat.shape[0]
  scale = np.full(p, 0.05)
  scale[i_e0] = 0.02 * (box[1] - box[0])
  with jax.enable_x64(True):
    x64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), x)
    y, w = jnp.asarray(perf_N), jnp.ones(n)

    def log_prob(th):
      mse = obj(th[:-1], x64, y, w)
      log_sig = th[-1]
      ll = -n * log_sig - 0.5 * n * mse / jnp.exp(2 * log_sig)
      inside = ((th[i_e0] > box[0]) & (th[i_e0] < box[1])
                & jnp.all(jnp.abs(th - theta_hat) < 10.0))
      return jnp.where(inside & jnp.isfinite(ll), ll, -jnp.inf)

    key = jax.random.PRNGKey(seed + 1)
    k_init, k_run = jax.random.split(key)
    init = theta_hat + 0.1 * scale * jax.random.normal(k_init, (num_chains, p))
    run = jax.jit(functools.partial(random_walk_metropolis, log_prob,
                                    num_steps=num_mcmc))
    step = np.diag(scale * 2.38 / np.sqrt(p) * 0.5)
    # Pilot rounds: proposal from the pilot chains' covariance, rescaled
    # towards the ~0.23 acceptance of an efficient random walk.
    gain = 2.38 / np.sqrt(p)
    for _ in range(3):
      samples, acc = run(init, jnp.asarray(step), key=k_run)
      flat = np.asarray(samples[:, num_mcmc // 2:]).reshape(-1, p)
      gain *= float(np.clip(np.mean(acc) / 0.23, 0.3, 3.0))
      step = np.linalg.cholesky(np.cov(flat.T) + 1e-10 * np.eye(p)) * gain
      init = samples[:, -1]
      k_run = jax.random.fold_in(k_run, 1)
    samples, acc = run(init, jnp.asarray(step), key=k_run)
    flat = np.asarray(samples[:, num_mcmc // 2:]).reshape(-1, p)
  post = {k: (np.exp(flat[:, i]) if k in law.positive else flat[:, i])
          for i, k in enumerate(law.param_names)}
  post["sigma"] = np.exp(flat[:, -1])
  return post, float(np.mean(acc))
