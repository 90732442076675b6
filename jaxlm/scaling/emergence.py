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
and the posterior by vmapped chains of blackjax NUTS (Hoffman and Gelman 2014) with Stan's
window adaptation of the step size and a dense mass matrix, over the unconstrained
parameters (log of the positive ones) and log noise, with a uniform prior box on E0 spanning
the observed losses widened by their range (NUTS moves in the logit of that box, see
`sample_posterior`). Convergence is reported per parameter as
rank-normalised split R-hat and bulk effective sample size (Vehtari et al. 2021).
blackjax is an optional dependency (`pip install 'jaxlm[bayes]'`), imported only when a
posterior is sampled. When the data cannot locate the elbow (only far-from-emergence
checkpoints) the posterior fills the prior box and `EmergenceResult.determined` is False.
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
# NUTS tree depth cap of the posterior (<= 127 leapfrog steps per draw). Where the data
# cannot locate the elbow the posterior is flat up to its prior box and every tree would
# reach Stan's depth 10; where it can, trees rarely exceed depth 6 (mean ~30 steps).
POSTERIOR_MAX_DOUBLINGS = 7


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
    acceptance: mean NUTS acceptance probability (adaptation targets 0.8).
    prior_box: (low, high) uniform prior on E0.
    determined: the posterior band is narrower than `max_band` and does not
      touch the prior box; False means "the data cannot tell".
    rhat: name -> rank-normalised split R-hat of the chains (`rhat`; ~1.00 when the
      chains agree, > 1.01 is a warning), including "sigma"; None without MCMC.
    ess: name -> bulk effective sample size over all kept draws (`ess`).
    num_divergent: divergent NUTS transitions after warmup, over all chains (the curved
      log k - log alpha ridge causes a few percent; the prior box walls many more when
      the data cannot locate the elbow).
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
  rhat: dict[str, float] | None = None
  ess: dict[str, float] | None = None
  num_divergent: int = 0

  def to_json(self) -> dict:
    """Fitted parameters with intervals and the emergence summaries."""
    out = self.mle.to_json()
    finite = lambda d: None if d is None else {  # strict JSON: NaN (constant chains) -> None
        k: (v if np.isfinite(v) else None) for k, v in d.items()}
    out.update(noise_sigma=self.noise_sigma, e0_mle=self.e0_mle,
               e0_bootstrap=self.e0_bootstrap, e0_posterior=self.e0_posterior,
               acceptance=None if self.posterior is None else self.acceptance,  # strict JSON
               prior_box=self.prior_box,
               determined=self.determined, form=self.form, d0=self.d0,
               chance=self.chance, rhat=finite(self.rhat), ess=finite(self.ess),
               num_divergent=self.num_divergent)
    return out


def _starts(law: fit_lib.Law, loss_N, perf_N, chance):
  """Grid of starts spanning the observed losses for E0."""
  lo, hi = float(np.min(loss_N)), float(np.max(loss_N))
  span = max(perf_N.max() - perf_N.min(), 1e-3) / max(hi - lo, 1e-3)
  grid = {"A": (span, 4 * span), "k": (0.01, 0.1), "alpha": (0.5, 1.5),
          "E0": tuple(np.linspace(lo - 0.25 * (hi - lo), hi, 6)),
          "B": (float(np.min(perf_N)),)}
  return fit_lib.grid_starts(law, {n: grid[n] for n in law.param_names})


def _blackjax():
  """blackjax, imported on first use so jaxlm imports without it."""
  try:
    import blackjax  # pylint: disable=g-import-not-at-top
    import blackjax.diagnostics  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise ImportError(
        "The emergence posterior samples with blackjax NUTS; install the optional extra "
        "with `pip install 'jaxlm[bayes]'` (or `pip install 'blackjax>=1.2,<2'`), or pass "
        "num_mcmc=0.") from e
  return blackjax


def nuts(log_prob, init_CxP, num_warmup: int, num_samples: int, key,
         inverse_mass_PxP=None, max_num_doublings: int = 10):
  """Vmapped chains of NUTS (Hoffman and Gelman 2014, Alg. 6, blackjax) after window adaptation.

  Each chain runs its own Stan window adaptation (dual-averaging step size towards 0.8
  acceptance, dense mass matrix from the warmup draws) for `num_warmup` steps, then
  `num_samples` NUTS steps; warmup draws are not returned.

  Args:
    log_prob: `theta_P -> scalar` unnormalised log density (differentiable; -inf outside
      the support).
    init_CxP: one start per chain.
    num_warmup: adaptation steps per chain (> 0).
    num_samples: kept draws per chain (> 0).
    key: PRNG key.
    inverse_mass_PxP: optional starting guess of the posterior covariance (the
      adaptation replaces it by the warmup draws' covariance).
    max_num_doublings: tree depth cap (at most 2^depth - 1 leapfrog steps per draw; Stan's
      default 10). Vmapped chains move in lockstep, so every draw costs the deepest
      chain's tree.

  Returns:
    (samples (C, num_samples, P), mean acceptance probability per chain (C,),
    divergent transitions per chain (C,)).
  """
  chex.assert_rank(init_CxP, 2)
  if num_warmup <= 0 or num_samples <= 0:
    raise ValueError(f"num_warmup and num_samples must be > 0, got {num_warmup} and "
                     f"{num_samples}.")
  blackjax = _blackjax()
  from blackjax.adaptation import base  # pylint: disable=g-import-not-at-top
  warmup = blackjax.window_adaptation(
      blackjax.nuts, log_prob, is_mass_matrix_diagonal=False,
      initial_inverse_mass_matrix=inverse_mass_PxP,
      adaptation_info_fn=base.get_filter_adapt_info_fn(), max_num_doublings=max_num_doublings)

  def chain(theta0, key):
    k_warm, k_run = jax.random.split(key)
    (state, params), _ = warmup.run(k_warm, theta0, num_steps=num_warmup)
    step = blackjax.nuts(log_prob, **params).step  # params carry max_num_doublings.

    def body(state, key):
      state, info = step(key, state)
      return state, (state.position, info.acceptance_rate, info.is_divergent)

    _, (samples, acc, div) = jax.lax.scan(body, state, jax.random.split(k_run, num_samples))
    return samples, jnp.mean(acc), jnp.sum(div)

  return jax.vmap(chain)(init_CxP, jax.random.split(key, init_CxP.shape[0]))


def rhat(samples_CxS) -> float:
  """Rank-normalised split R-hat (Vehtari et al. 2021, Sec. 4.3; blackjax.diagnostics).

  Each chain is split in half; draws are replaced by the normal scores of their pooled
  ranks, z = Phi^-1((r - 3/8) / (S + 1/4)) (Eq. 14), and the classic potential scale
  reduction sqrt(((S'-1)/S' W + B/S') / W) of the 2C half-chains of length S' (Gelman and
  Rubin 1992) is computed on z and on the folded draws |x - median|; the larger one is
  returned. Values above ~1.01 flag chains that do not agree.
  """
  chex.assert_rank(samples_CxS, 2)
  with jax.enable_x64(True):
    fn = jax.jit(_blackjax().diagnostics.rhat)  # one compile per shape
    return float(fn(jnp.asarray(samples_CxS, jnp.float64)))


def ess(samples_CxS) -> float:
  """Bulk effective sample size (Vehtari et al. 2021, Sec. 3.2 and 4.3; blackjax.diagnostics).

  Geyer's initial-monotone-sequence estimator of the integrated autocorrelation time on the
  rank-normalised split chains (the normal scores of `rhat`): S_total / tau.
  """
  chex.assert_rank(samples_CxS, 2)
  with jax.enable_x64(True):
    fn = jax.jit(_blackjax().diagnostics.ess_bulk)  # one compile per shape
    return float(fn(jnp.asarray(samples_CxS, jnp.float64)))


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
    num_chains, num_mcmc: NUTS chains and steps per chain (0 = none); the first half of
      every chain is window adaptation (step size, dense mass matrix) and is discarded.
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
  post = e0_post = rhats = esss = None
  acc, divergent = float("nan"), 0
  if num_mcmc:
    post, acc, rhats, esss, divergent = _posterior(law, x, perf_N, res, sigma, box,
                                                   num_chains, num_mcmc, seed)
    e0_post = band(post["E0"])
  ref = e0_post or e0_boot
  determined = True
  if ref is not None:
    margin = 0.05 * (box[1] - box[0])
    determined = (ref[2] - ref[0] < max_band and ref[0] > box[0] + margin
                  and ref[2] < box[1] - margin)
  return EmergenceResult(res, sigma, res.params["E0"], e0_boot, e0_post, post,
                         acc, box, bool(determined), form, float(d0), chance, rhats, esss,
                         divergent)


def posterior_start(law, res, sigma, box):
  """(theta_hat_P, scale_P): the MLE as theta = (params, log sigma) and a rough posterior scale.

  Positive parameters enter as their logs; the scale (0.05, and 2% of the prior box for E0)
  seeds the chains' spread and the sampler's first mass matrix.
  """
  theta_hat = np.array([np.log(res.params[k]) if k in law.positive
                        else res.params[k] for k in law.param_names]
                       + [np.log(sigma)])
  scale = np.full(theta_hat.shape[0], 0.05)
  scale[law.param_names.index("E0")] = 0.02 * (box[1] - box[0])
  return theta_hat, scale


def posterior_log_prob(law, x, perf_N, theta_hat_P, box):
  """Unnormalised log posterior over theta = (params, log sigma).

  Gaussian likelihood of `perf_N` around the law, flat in the unconstrained parameters
  (log of `law.positive`) and log sigma, restricted to E0 inside `box` and to within 10 of
  the MLE `theta_hat_P` (`posterior_start`) in every coordinate. Traceable: the arrays may
  be jit arguments. Run under `jax.enable_x64(True)`.

  Args:
    law: the emergence law.
    x: (loss_N, data_N) inputs.
    perf_N: observed accuracies.
    theta_hat_P: MLE (params, log sigma).
    box: (low, high) uniform prior on E0.

  Returns:
    log_prob: theta_P -> scalar (-inf outside the prior box).
  """
  obj = fit_lib.make_objective(law)
  n = perf_N.shape[0]
  i_e0 = law.param_names.index("E0")
  x = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), x)
  y, w = jnp.asarray(perf_N, jnp.float64), jnp.ones(n, jnp.float64)

  def log_prob(th):
    mse = obj(th[:-1], x, y, w)
    log_sig = th[-1]
    ll = -n * log_sig - 0.5 * n * mse / jnp.exp(2 * log_sig)
    inside = ((th[i_e0] > box[0]) & (th[i_e0] < box[1])
              & jnp.all(jnp.abs(th - theta_hat_P) < 10.0))
    return jnp.where(inside & jnp.isfinite(ll), ll, -jnp.inf)

  return log_prob


@functools.partial(jax.jit, static_argnames=("law", "num_warmup", "num_samples"))
def sample_posterior(init_CxP, key, x, perf_N, theta_hat_P, box, scale_P, *, law,
                     num_warmup, num_samples):
  """NUTS draws of theta (`posterior_log_prob`), compiled once per law, shapes and lengths.

  The prior confines theta to a box: E0 to `box`, every coordinate to within 10 of
  `theta_hat_P`. Hamiltonian trajectories cannot cross such a hard wall (every wall hit is a
  divergence, and where the data cannot locate the elbow the chains stick to the walls), so,
  as Stan does for bounded parameters, NUTS moves in u = logit((theta - lo) / (hi - lo)) with
  the log Jacobian sum(log s(u) + log s(-u)) added (s = sigmoid): the density of theta, and
  so the posterior, is unchanged.

  Args:
    init_CxP: chain starts (theta, strictly inside the box).
    key: PRNG key.
    x, perf_N, theta_hat_P, box: as in `posterior_log_prob`.
    scale_P: rough posterior scale of theta (first mass matrix).
    law: the emergence law (static).
    num_warmup, num_samples: as in `nuts`.

  Returns:
    (theta draws (C, num_samples, P), acceptance (C,), divergences (C,)) as `nuts`.
  """
  log_prob = posterior_log_prob(law, x, perf_N, theta_hat_P, box)
  i_e0 = law.param_names.index("E0")
  lo_P = (theta_hat_P - 10.0).at[i_e0].max(box[0])
  hi_P = (theta_hat_P + 10.0).at[i_e0].min(box[1])
  to_theta = lambda u: lo_P + (hi_P - lo_P) * jax.nn.sigmoid(u)
  log_prob_u = lambda u: log_prob(to_theta(u)) + jnp.sum(
      jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u))
  frac_CxP = (init_CxP - lo_P) / (hi_P - lo_P)
  # d theta / d u = (hi - lo) s (1 - s) at the MLE turns the theta scale into a u scale.
  f_hat = (theta_hat_P - lo_P) / (hi_P - lo_P)
  scale_u = scale_P / ((hi_P - lo_P) * f_hat * (1 - f_hat))
  u_CxSxP, acc, div = nuts(log_prob_u, jnp.log(frac_CxP) - jnp.log1p(-frac_CxP),
                           num_warmup, num_samples, key,
                           inverse_mass_PxP=jnp.diag(scale_u**2),
                           max_num_doublings=POSTERIOR_MAX_DOUBLINGS)
  return to_theta(u_CxSxP), acc, div


def _posterior(law, x, perf_N, res, sigma, box, num_chains, num_mcmc, seed):
  """NUTS chains around the MLE: (samples, acceptance, R-hat, ESS, divergences)."""
  names = law.param_names + ("sigma",)
  theta_hat, scale = posterior_start(law, res, sigma, box)
  with jax.enable_x64(True):
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed + 1))
    init = theta_hat + scale * jax.random.normal(k_init, (num_chains, theta_hat.shape[0]))
    num_warmup = max(num_mcmc // 2, 1)
    samples_CxSxP, acc, div = jax.device_get(sample_posterior(
        init, k_run, x, perf_N, jnp.asarray(theta_hat), jnp.asarray(box), scale, law=law,
        num_warmup=num_warmup, num_samples=max(num_mcmc - num_warmup, 1)))
    rhats = {k: rhat(samples_CxSxP[..., i]) for i, k in enumerate(names)}
    esss = {k: ess(samples_CxSxP[..., i]) for i, k in enumerate(names)}
  flat = samples_CxSxP.reshape(-1, len(names))
  post = {k: (np.exp(flat[:, i]) if k in law.positive or k == "sigma" else flat[:, i])
          for i, k in enumerate(names)}
  return post, float(np.mean(acc)), rhats, esss, int(np.sum(div))
