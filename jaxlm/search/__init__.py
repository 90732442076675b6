"""Test-time compute: selection among samples, pass@k, PRM-guided tree search, budget forcing,
compute-optimal strategy choice, and a synthetic process with exact accuracies."""

from jaxlm.search.compute_optimal import compute_optimal_accuracy
from jaxlm.search.compute_optimal import compute_optimal_report
from jaxlm.search.compute_optimal import difficulty_bins
from jaxlm.search.compute_optimal import plot_accuracy_vs_budget
from jaxlm.search.compute_optimal import select_strategies
from jaxlm.search.passk import bootstrap_ci
from jaxlm.search.passk import maj_at_k
from jaxlm.search.passk import maj_at_k_batch
from jaxlm.search.passk import pass_at_k
from jaxlm.search.select import aggregate_step_scores
from jaxlm.search.select import best_of_n
from jaxlm.search.select import borda_vote
from jaxlm.search.select import canonical_answer_ids
from jaxlm.search.select import majority_vote
from jaxlm.search.select import ranking_auc
from jaxlm.search.select import self_certainty
from jaxlm.search.select import take_selected
from jaxlm.search.select import vote
from jaxlm.search.select import weighted_vote
from jaxlm.search.tree import append_steps
from jaxlm.search.tree import beam_search
from jaxlm.search.tree import best_of_n_sampling
from jaxlm.search.tree import budget_force
from jaxlm.search.tree import dvts
from jaxlm.search.tree import expand
from jaxlm.search.tree import nothinking_prefill
from jaxlm.search.tree import Prefixes
from jaxlm.search.tree import rollout_score
from jaxlm.search.tree import SearchResult
from jaxlm.search.tree import Steps
from jaxlm.search.tree import tree_search
from jaxlm.search.tree import write_tokens

__all__ = [
    "Prefixes", "SearchResult", "Steps", "aggregate_step_scores", "append_steps",
    "beam_search", "best_of_n", "best_of_n_sampling", "bootstrap_ci", "borda_vote",
    "budget_force", "canonical_answer_ids", "compute_optimal_accuracy",
    "compute_optimal_report", "difficulty_bins", "dvts", "expand", "maj_at_k", "maj_at_k_batch",
    "majority_vote", "nothinking_prefill", "pass_at_k", "plot_accuracy_vs_budget", "ranking_auc",
    "rollout_score", "select_strategies", "self_certainty", "take_selected", "tree_search",
    "vote", "weighted_vote", "write_tokens",
]
