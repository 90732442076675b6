"""Pure losses: (outputs, batch, *, hparams) -> (scalar, metrics)."""

from jaxlm.losses.calm import calm_aux_loss
from jaxlm.losses.distill import context_distill_loss, strip_context
from jaxlm.losses.ilql import (ILQL_VARIANTS, ILQLOutputs, ILQLVariant, cql_penalty,
                               expectile_loss, ilql_loss)
from jaxlm.losses import xent
from jaxlm.losses.lm import (LMOutputs, batch_token_nll, bc_loss, fused_masked_nll,
                             fused_next_token_loss, gather_actions, lm_loss, masked_mean,
                             next_token_loss, token_nll)
from jaxlm.losses.mc import MCOutputs, mc_loss
from jaxlm.losses.prm import PRMBatch, prm_loss

__all__ = [
    "ILQL_VARIANTS", "ILQLOutputs", "ILQLVariant", "LMOutputs", "MCOutputs", "PRMBatch",
    "batch_token_nll", "bc_loss", "calm_aux_loss", "context_distill_loss", "cql_penalty",
    "expectile_loss", "fused_masked_nll", "fused_next_token_loss", "gather_actions", "ilql_loss",
    "lm_loss", "masked_mean", "mc_loss", "next_token_loss", "prm_loss", "strip_context",
    "token_nll", "xent",
]
