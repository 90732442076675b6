"""Test-time compute on Countdown with a transformer policy and PRM (Snell et al. 2024).

The experiment plugs a Countdown policy and its process reward model into the model-free search
of ``jaxlm.search`` (the LM-backed ``propose`` / ``score`` of ``jaxlm.search.lm``, the labels of
``jaxlm.search.labels``); it lives in ``algos`` because it trains:

* ``config``: ``Config`` and the table of search strategies.
* ``models``: problem sets, the behaviour-cloned policy, Monte-Carlo PRM labels, the PRM
  (``train_models``).
* ``evaluate``: greedy decoding, best-of-N (naive / majority / PRM-weighted vote), PRM beam
  search, lookahead search and DVTS at every budget N, judged by the exact verifier
  (``evaluate_strategies``).
* ``pipeline``: ``train_and_evaluate`` trains (or, with ``resume``, loads) the models, runs
  every strategy, bins validation questions by difficulty (oracle pass@1), runs the
  cross-validated compute-optimal selector (``jaxlm.search.compute_optimal``) and writes
  ``results.json`` ({strategy: {N: accuracy}}), ``report.json`` (per-bin tables, coverage,
  timings), ``accuracy.npz`` and accuracy-vs-budget plots; ``results_table`` prints them.
* ``budget_forcing``: a policy trained on search traces decoded with budget forcing and with
  NoThinking, Ma et al. 2025 (``budget_forcing_experiment``, ``budget_forcing.json``).

Presets, runtimes and measured results: experiments/configs/search.py and docs/search.md.
"""

from jaxlm.algos.test_time.budget_forcing import budget_forcing_experiment, evaluate_thinking
from jaxlm.algos.test_time.config import STRATEGIES, Config
from jaxlm.algos.test_time.evaluate import evaluate_strategies
from jaxlm.algos.test_time.models import train_models, train_policy
from jaxlm.algos.test_time.pipeline import results_table, search_experiment, train_and_evaluate

__all__ = [
    "Config", "STRATEGIES", "budget_forcing_experiment", "evaluate_strategies",
    "evaluate_thinking", "results_table", "search_experiment", "train_and_evaluate",
    "train_models", "train_policy",
]
