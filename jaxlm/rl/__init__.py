"""Token-level returns for RL on language."""

from jaxlm.rl.returns import (DecisionView, batch_gae, batch_mc_returns, batch_td_targets,
                              decision_view, gae, mc_returns, mean_action_return, td_targets)

__all__ = [
    "DecisionView", "batch_gae", "batch_mc_returns", "batch_td_targets", "decision_view", "gae",
    "mc_returns", "mean_action_return", "td_targets",
]
