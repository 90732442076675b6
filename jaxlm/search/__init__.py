"""Test-time compute: selection among samples, pass@k, PRM-guided tree search, budget forcing,
LM-backed samplers and PRM scorers, Monte-Carlo PRM labels, compute-optimal strategy choice,
and a synthetic process with exact accuracies (``jaxlm.search.synthetic``).

The names below are the user-facing API; each module keeps its building blocks.
"""

from jaxlm.search.compute_optimal import (compute_optimal_report, difficulty_bins,
                                          plot_accuracy_vs_budget)
from jaxlm.search.labels import estimate_labels, label_solutions, monte_carlo_values
from jaxlm.search.lm import (PRMScorer, encode_prompts, make_sampler, make_thinking_sampler,
                             prm_networks)
from jaxlm.search.passk import bootstrap_ci, maj_at_k, pass_at_k
from jaxlm.search.select import (aggregate_step_scores, best_of_n, borda_vote,
                                 canonical_answer_ids, majority_vote, ranking_auc,
                                 self_certainty, take_selected, weighted_vote)
from jaxlm.search.tree import (Prefixes, Steps, beam_search, best_of_n_sampling, budget_force,
                               dvts, nothinking_prefill, tree_search)

__all__ = [
    "PRMScorer", "Prefixes", "Steps", "aggregate_step_scores", "beam_search", "best_of_n",
    "best_of_n_sampling", "bootstrap_ci", "borda_vote", "budget_force", "canonical_answer_ids",
    "compute_optimal_report", "difficulty_bins", "dvts", "encode_prompts", "estimate_labels",
    "label_solutions", "maj_at_k", "majority_vote", "make_sampler", "make_thinking_sampler",
    "monte_carlo_values", "nothinking_prefill", "pass_at_k", "plot_accuracy_vs_budget",
    "prm_networks", "ranking_auc", "self_certainty", "take_selected", "tree_search",
    "weighted_vote",
]
