"""Scaling science: robust multi-start fitting, value-based RL scaling laws, emergence laws.

Arrays in, fits out; `pipelines` runs the experiments' fits from a config. float64 inside
`jax.enable_x64(True)` contexts only; the global x64 flag is never changed. `jaxlm.scaling.fit`
is the fitter module (its entry point is `jaxlm.scaling.fit.fit`); the name is not rebound to
the function so that `from jaxlm.scaling import fit` always gives the module.
"""

from jaxlm.scaling import data, emergence, fit, laws, pipelines, solvers, value_rl
from jaxlm.scaling.emergence import EmergenceResult, fit_emergence
from jaxlm.scaling.fit import FitResult, Law, fit_many, grid_starts, random_starts
from jaxlm.scaling.laws import (CHINCHILLA, POWER_LAW, POWER_LAW_MULT, fit_chinchilla,
                                fit_shared_slope)
from jaxlm.scaling.value_rl import ValueRLResult, run_pipeline

__all__ = [
    "CHINCHILLA", "POWER_LAW", "POWER_LAW_MULT", "EmergenceResult", "FitResult", "Law",
    "ValueRLResult", "data", "emergence", "fit", "fit_chinchilla", "fit_emergence", "fit_many",
    "fit_shared_slope", "grid_starts", "laws", "pipelines", "random_starts", "run_pipeline",
    "value_rl",
]
