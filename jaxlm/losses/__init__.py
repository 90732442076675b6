"""Pure losses: (outputs, batch, *, hparams) -> (scalar, metrics)."""

from jaxlm.losses.ilql import (ILQL_VARIANTS, ILQLOutputs, ILQLVariant, cql_penalty,
                               expectile_loss, ilql_loss, perturb_logits)
from jaxlm.losses.lm import (LMOutputs, batch_token_nll, bc_loss, gather_actions, lm_loss,
                             masked_mean, token_nll)
from jaxlm.losses.mc import MCOutputs, mc_loss

__all__ = [
    "ILQL_VARIANTS", "ILQLOutputs", "ILQLVariant", "LMOutputs", "MCOutputs", "batch_token_nll",
    "bc_loss", "cql_penalty", "expectile_loss", "gather_actions", "ilql_loss", "lm_loss",
    "masked_mean", "mc_loss", "perturb_logits", "token_nll",
]
