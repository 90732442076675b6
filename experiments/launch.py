"""The launcher every experiment entry point calls: flags, logging, multi-host set-up, run.

An entry point is `launch.run(module, name, workdir)`: `--config file.py[:preset]` (default
`experiments/configs/<name>.py`, found from this package, not the current directory; with
`--config.a.b=value` overrides; an unknown key is an error naming it) becomes `module.Config`
through `jaxlm.config.from_dict`, `module.train_and_evaluate(config, workdir, resume=...)` runs,
and `summary(results)` is printed. Flags and logging set-up live
here, never in the library.
"""

import os
from typing import Any, Callable

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxlm import checkpoint
from jaxlm import config as config_lib
from jaxlm import distributed

_COORD = flags.DEFINE_string("jaxlm_coordinator", None,
                             "host:port of process 0 (multi-host; or env JAXLM_COORDINATOR).")
_NPROC = flags.DEFINE_integer("jaxlm_num_processes", None,
                              "Number of processes (multi-host; or env JAXLM_NUM_PROCESSES).")
_PID = flags.DEFINE_integer("jaxlm_process_id", None,
                            "This process's id (multi-host; or env JAXLM_PROCESS_ID).")
_TIMEOUT = flags.DEFINE_integer(
    "jaxlm_init_timeout", None,
    "Seconds to wait for the coordinator and the other processes (multi-host; or env "
    "JAXLM_INIT_TIMEOUT; default 300).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
_RESUME = flags.DEFINE_bool("resume", False, "Continue the runs in --workdir.")


def run(module, name: str, workdir: str, summary: Callable[[Any], str] = str) -> None:
  """Parses flags and runs `module.train_and_evaluate` (see the module docstring)."""
  config_file = os.path.join(os.path.dirname(__file__), "configs", f"{name}.py")
  config_flag = config_flags.DEFINE_config_file(
      "config", config_file, "Config file (path.py[:preset]).", lock_config=True)
  flags.FLAGS.set_default("workdir", workdir)

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments {argv[1:]}")
    checkpoint.quiet_orbax_logs()
    distributed.maybe_initialize(_COORD.value, _NPROC.value, _PID.value, _TIMEOUT.value)
    config = config_lib.from_dict(module.Config, config_flag.value.to_dict())
    results = module.train_and_evaluate(config, _WORKDIR.value, resume=_RESUME.value)
    print(summary(results))
    print(f"results: {_WORKDIR.value}")

  app.run(main)
