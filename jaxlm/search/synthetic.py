"""A synthetic step process whose test-time-compute accuracies are known exactly.

A solution has T steps. A prefix is *alive* while all its steps are right; from an alive prefix
with d steps, the next step is right with probability p[d]; a dead prefix stays dead. After T
steps an alive solution gives the correct answer (id 0) and a dead one one of W wrong answers
(ids 1..W) uniformly. The true value of a prefix with d steps is alive * prod_{s >= d} p[s], and
the process reward model is that value plus sigma * noise, the noise standard normal (df = inf)
or Student-t with integer df degrees of freedom, independent across distinct prefixes (a fixed
hash of the prefix tokens draws it, so the PRM is a deterministic function like a real one).
Sampling also uses integer hashes rather than jax.random, which keeps compile times small.

This is the setting of Snell et al. 2024 in miniature: because candidates are
independent given the search's selections, the number of alive candidates is a Markov chain
over rounds whose transitions are one-dimensional integrals over the K-th largest score. The
``exact_*`` functions compute expected accuracies from it (quadrature accurate to ~1e-7);
``monte_carlo_accuracy`` runs the real search code (``tree.tree_search`` + ``select``) on the
same process so tests can compare the two.
"""

import dataclasses
import functools
import itertools
from math import comb, factorial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxlm.search import select
from jaxlm.search import tree

_UID = 64  # token = uid * 64 + answer * 2 + alive
SELECTIONS = ("naive", "majority", "weighted")


@dataclasses.dataclass(frozen=True)
class StepProcess:
  """Parameters of the synthetic process.

  Attributes:
    step_probs: p[d], probability that step d + 1 is right from an alive prefix.
    sigma: scale of the PRM noise.
    df: Student-t degrees of freedom of the noise (inf: Gaussian).
    num_wrong: W, distinct wrong final answers.
    seed: seed of the PRM noise hash.
  """
  step_probs: tuple[float, ...]
  sigma: float
  df: float = float("inf")
  num_wrong: int = 2
  seed: int = 0

  def __post_init__(self):
    if not self.step_probs or not all(0.0 <= p <= 1.0 for p in self.step_probs):
      raise ValueError(f"step_probs must be non-empty probabilities, got {self.step_probs}")
    if self.sigma <= 0:
      raise ValueError(f"sigma must be > 0, got {self.sigma}")
    if not (np.isinf(self.df) or (self.df >= 2 and float(self.df).is_integer())):
      raise ValueError(f"df must be inf or an integer >= 2, got {self.df}")
    if not 1 <= self.num_wrong < 32:
      raise ValueError(f"num_wrong must be in 1..31, got {self.num_wrong}")

  @property
  def num_steps(self) -> int:
    return len(self.step_probs)

  def suffix_values(self) -> np.ndarray:
    """[T + 1] value of an alive prefix after d steps: prod_{s >= d} p[s]."""
    return np.append(np.cumprod(self.step_probs[::-1])[::-1], 1.0)

  def noise(self):
    return (stats.norm(scale=self.sigma) if np.isinf(self.df)
            else stats.t(self.df, scale=self.sigma))


# ----------------------------------------------------------------------------- JAX side


def prompts(process: StepProcess, num_questions: int) -> tree.Prefixes:
  """Q independent questions, each a one-token prompt in a buffer of 1 + T tokens."""
  tokens = jnp.zeros((num_questions, 1 + process.num_steps), jnp.int32)
  tokens = tokens.at[:, 0].set((jnp.arange(num_questions) + 1) * _UID + 1)
  return tree.Prefixes(tokens, jnp.ones((num_questions,), jnp.int32),
                       jnp.zeros((num_questions,), bool))


def _last(prefixes):
  return jnp.take_along_axis(prefixes.tokens, prefixes.lengths[..., None] - 1, axis=-1)[..., 0]


def _mix(h):
  """An avalanching 32-bit integer hash (xor-shift-multiply finaliser)."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x7FEB352D)
  h = h ^ (h >> 15)
  h = h * jnp.uint32(0x846CA68B)
  return h ^ (h >> 16)


def _uniform(h):
  """uint32 hash -> float32 in (0, 1)."""
  return ((h >> 8).astype(jnp.float32) + 0.5) / float(1 << 24)


def _hash_prefixes(seed, prefixes):
  """[P] uint32 hash of each prefix's valid tokens."""
  h = jnp.full(prefixes.lengths.shape, seed, jnp.uint32)
  for i in range(prefixes.tokens.shape[-1]):
    token = jnp.where(i < prefixes.lengths, prefixes.tokens[..., i], 0).astype(jnp.uint32)
    h = _mix(h ^ _mix(token + jnp.uint32(i)))
  return h


def _seed(rng):
  """uint32 scalar from a PRNG key (raw or typed)."""
  if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  words = rng.reshape(-1).astype(jnp.uint32)
  return _mix(words[0] ^ _mix(words[-1]))


def propose(process: StepProcess, rng: jax.Array, prefixes: tree.Prefixes, n: int) -> tree.Steps:
  """``tree.ProposeFn`` of the process: one token per step (randomness hashed from rng)."""
  h_PxN = _mix(_hash_prefixes(_seed(rng), prefixes)[:, None]
               + jnp.uint32(0x9E3779B9) * jnp.arange(1, n + 1, dtype=jnp.uint32)[None, :])
  p_T = jnp.asarray(process.step_probs, jnp.float32)
  depth = prefixes.lengths - 1
  alive = (_last(prefixes) % 2 == 1)[:, None]
  p_P = p_T[jnp.clip(depth, 0, process.num_steps - 1)]
  alive = alive & (_uniform(_mix(h_PxN ^ 1)) < p_P[:, None])
  final = (depth + 1 >= process.num_steps)[:, None]
  wrong = (_mix(h_PxN ^ 2) % process.num_wrong).astype(jnp.int32) + 1
  answer = jnp.where(final & ~alive, wrong, 0)
  uid = (_mix(h_PxN ^ 3) >> 8).astype(jnp.int32) + 1
  token = uid * _UID + answer * 2 + alive.astype(jnp.int32)
  shape = h_PxN.shape
  return tree.Steps(token[..., None], jnp.ones(shape, jnp.int32), jnp.broadcast_to(final, shape))


def true_value(process: StepProcess, prefixes: tree.Prefixes) -> jax.Array:
  """alive * prod of the remaining step probabilities."""
  suffix = jnp.asarray(process.suffix_values(), jnp.float32)
  alive = (_last(prefixes) % 2).astype(jnp.float32)
  return alive * suffix[jnp.clip(prefixes.lengths - 1, 0, process.num_steps)]


def score(process: StepProcess, prefixes: tree.Prefixes) -> jax.Array:
  """``tree.ScoreFn``: true value + sigma * noise, the noise a fixed hash of the prefix tokens.

  Normal draws are inverse-CDF transforms of hashed uniforms; a Student-t draw with integer df
  is z0 / sqrt(mean(z1^2 .. zdf^2)).
  """
  h = _hash_prefixes(jnp.uint32(process.seed), prefixes)
  normal = lambda i: jax.scipy.special.ndtri(_uniform(_mix(h ^ jnp.uint32(i))))
  eps = normal(0)
  if not np.isinf(process.df):
    chi2 = sum(normal(i) ** 2 for i in range(1, int(process.df) + 1))
    eps = eps / jnp.sqrt(chi2 / process.df)
  return true_value(process, prefixes) + process.sigma * eps


def answer_ids(prefixes: tree.Prefixes) -> jax.Array:
  """Final answer id (0 correct, 1..W wrong) of finished prefixes, -1 for unfinished."""
  return jnp.where(prefixes.done, (_last(prefixes) // 2) % (_UID // 2), -1)


def select_answer(selection: str, scores_BxN, ids_BxN, valid_BxN) -> jax.Array:
  """idx_B of the chosen candidate: "naive" (max score), "majority" or "weighted" vote."""
  ids_BxN = jnp.where(valid_BxN, ids_BxN, -1)
  if selection == "naive":
    return select.best_of_n(scores_BxN, valid_BxN)
  if selection == "majority":
    return select.majority_vote(ids_BxN)
  if selection == "weighted":
    return select.weighted_vote(scores_BxN, ids_BxN)
  raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5))
def _simulate(process, rng, num_questions, num_samples, beam_width, num_groups):
  result = tree.tree_search(
      rng, prompts(process, num_questions), functools.partial(propose, process),
      functools.partial(score, process), num_samples=num_samples, beam_width=beam_width,
      num_groups=num_groups, max_steps=process.num_steps)
  # Frontier slots are ordered by parent rank; shuffle them so that the votes' first-appearance
  # tie-break is uniform, as in the exact computation.
  flat = jnp.arange(num_questions * num_samples, dtype=jnp.uint32).reshape(num_questions, -1)
  perm = jnp.argsort(_mix(flat ^ _seed(jax.random.fold_in(rng, 1))), axis=1)
  shuffled = lambda x: jnp.take_along_axis(x, perm, axis=1)
  ids = shuffled(answer_ids(result.prefixes))
  scores, valid = shuffled(result.scores), shuffled(result.valid)
  return {s: select.take_selected(ids, select_answer(s, scores, ids, valid)) == 0
          for s in SELECTIONS}


def monte_carlo_accuracy(process: StepProcess, rng: jax.Array, num_questions: int,
                         num_samples: int, beam_width: int,
                         num_groups: int) -> dict[str, tuple[float, float]]:
  """Accuracy of ``tree.tree_search`` (N, M, G) + each selection on independent questions.

  Returns:
    {selection: (mean, standard error over num_questions)} for every name in SELECTIONS.
  """
  correct = _simulate(process, rng, num_questions, num_samples, beam_width, num_groups)
  out = {}
  for name, c in correct.items():
    c = np.asarray(c, np.float64)
    out[name] = (float(c.mean()), float(c.std() / np.sqrt(num_questions)))
  return out


# ----------------------------------------------------------------------------- exact side


def _grid(scale: float, num_points: int):
  """Nodes and weights for integrals over the real line (x = 0.5 + scale * tan(pi (u - 1/2)))."""
  theta = np.pi * ((np.arange(num_points) + 0.5) / num_points - 0.5)
  return 0.5 + scale * np.tan(theta), scale * np.pi / np.cos(theta) ** 2 / num_points


def top_k_alive(process: StepProcess, value: float, n: int, k: int,
                num_points: int = 4001) -> np.ndarray:
  """P[a, j]: probability that the k best of n scored candidates hold j alive ones, given a.

  Alive candidates score value + noise, dead ones noise. Conditioning on the k-th largest
  score x (alive or dead) the rest split into independent Bernoulli sides of x.

  Returns:
    [n + 1, k + 1] row-stochastic matrix.
  """
  out = np.zeros((n + 1, k + 1))
  if k == n:
    out[np.arange(n + 1), np.arange(n + 1)] = 1.0
    return out
  x, w = _grid(3.0 * process.sigma, num_points)
  noise = process.noise()
  f_a, up_a, lo_a = noise.pdf(x - value) * w, noise.sf(x - value), noise.cdf(x - value)
  f_d, up_d, lo_d = noise.pdf(x) * w, noise.sf(x), noise.cdf(x)
  for a in range(n + 1):
    d = n - a
    for j in range(max(0, k - d), min(a, k) + 1):
      rest = lo_d ** (d - k + j)
      total = 0.0
      if j >= 1:  # the k-th best is alive
        total += (a * comb(a - 1, j - 1) * comb(d, k - j)
                  * np.sum(f_a * up_a ** (j - 1) * lo_a ** (a - j) * up_d ** (k - j) * rest))
      if k - j >= 1:  # the k-th best is dead
        total += (d * comb(d - 1, k - j - 1) * comb(a, j)
                  * np.sum(f_d * up_d ** (k - j - 1) * rest * up_a ** j * lo_a ** (a - j)))
      out[a, j] = total
  return out


def _binomial_matrix(max_trials: int, p: float) -> np.ndarray:
  """B[t, a] = P(Binomial(t, p) = a)."""
  t = np.arange(max_trials + 1)
  return stats.binom.pmf(np.arange(max_trials + 1)[None, :], t[:, None], p)


def alive_distribution(process: StepProcess, num_samples: int, beam_width: int,
                       num_groups: int, num_points: int = 4001) -> np.ndarray:
  """Distribution of the number of alive (correct) candidates in the final frontier.

  Args:
    process: the step process.
    num_samples, beam_width, num_groups: N, M, G of ``tree.tree_search``.
    num_points: quadrature nodes.

  Returns:
    [N + 1] probabilities.
  """
  size = num_samples // num_groups
  keep = size // beam_width
  values, p = process.suffix_values(), process.step_probs
  dist = _binomial_matrix(size, p[0])[size]
  for d in range(1, process.num_steps):
    kept = dist @ top_k_alive(process, values[d], size, keep, num_points)
    dist = np.zeros(size + 1)
    dist[:keep * beam_width + 1] = (
        kept @ _binomial_matrix(keep * beam_width, p[d])[::beam_width])
  total = np.ones(1)
  for _ in range(num_groups):
    total = np.convolve(total, dist)
  return total


def _compositions(total: int, parts: int):
  """All tuples of ``parts`` non-negative ints summing to ``total``."""
  for cut in itertools.combinations(range(total + parts - 1), parts - 1):
    edges = (-1,) + cut + (total + parts - 1,)
    yield tuple(edges[i + 1] - edges[i] - 1 for i in range(parts))


def _win_given_alive(process: StepProcess, a: int, n: int, selection: str,
                     num_points: int) -> float:
  """P(the correct answer is selected | a alive of n final candidates)."""
  if a == 0:
    return 0.0
  noise = process.noise()
  if selection == "naive":
    x, w = _grid(3.0 * process.sigma, num_points)
    return float(a * np.sum(noise.pdf(x - 1.0) * w * noise.cdf(x - 1.0) ** (a - 1)
                            * noise.cdf(x) ** (n - a)))
  if selection == "weighted" and not np.isinf(process.df):
    raise ValueError("the exact weighted vote needs Gaussian noise (df = inf)")
  z = np.linspace(-12.0, 12.0, 4801)
  dz = z[1] - z[0]
  total = 0.0
  for counts in _compositions(n - a, process.num_wrong):
    prob = factorial(n - a) / np.prod([factorial(c) for c in counts])
    prob /= process.num_wrong ** (n - a)
    if selection == "majority":
      top = max(counts)
      win = 1.0 if a > top else (1.0 / (1 + counts.count(a)) if a == top else 0.0)
    else:  # sums of Gaussian scores: correct ~ N(a, a s^2), wrong answer j ~ N(0, c_j s^2)
      s_correct = a + np.sqrt(a) * process.sigma * z
      cdfs = [stats.norm.cdf(s_correct / (np.sqrt(c) * process.sigma)) for c in counts if c]
      win = float(np.sum(stats.norm.pdf(z) * np.prod(cdfs, axis=0)) * dz)
    total += prob * win
  return total


def exact_accuracy(process: StepProcess, num_samples: int, beam_width: int, num_groups: int,
                   selection: str = "naive", num_points: int = 4001) -> float:
  """Expected accuracy of ``tree.tree_search`` (N, M, G) followed by ``selection``.

  best-of-N is (N, 1, N), beam search (N, M, 1), DVTS (N, M, N / M).
  """
  if selection not in SELECTIONS:
    raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
  dist = alive_distribution(process, num_samples, beam_width, num_groups, num_points)
  return float(sum(dist[a] * _win_given_alive(process, a, num_samples, selection, num_points)
                   for a in range(num_samples + 1) if dist[a] > 1e-15))
