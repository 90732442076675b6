"""Token-level returns for RL on language."""

from jaxlm.rl.returns import (DecisionView, action_return_stats, batch_gae, batch_mc_returns,
                              batch_td_targets, decision_view, gae, mc_returns, td_targets)

__all__ = [
    "DecisionView", "action_return_stats", "batch_gae", "batch_mc_returns", "batch_td_targets",
    "decision_view", "gae", "mc_returns", "td_targets",
]
