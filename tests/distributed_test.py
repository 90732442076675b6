"""Multi-host start-up failures (issue 16, class 7): a bounded wait that names the coordinator."""

import os
import socket
import subprocess
import sys
import time
from unittest import mock

from absl.testing import absltest
import jax

from jaxlm import distributed

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _unused_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run(args, env=None, limit=20.0):
  """Runs python `args` from the repo root; (returncode, stderr, seconds)."""
  t0 = time.monotonic()
  p = subprocess.run([sys.executable, *args], cwd=_REPO, capture_output=True, text=True,
                     timeout=limit, env={**os.environ, "PYTHONPATH": _REPO, **(env or {})})
  return p.returncode, p.stderr, time.monotonic() - t0


class DistributedTest(absltest.TestCase):

  def test_unreachable_coordinator_flag_fails_fast_naming_it(self):
    # Before: JAX waited its default 300 s, then aborted the process from C++ with no address.
    address = f"127.0.0.1:{_unused_port()}"
    code, err, seconds = _run(
        ["-m", "experiments.sft", f"--jaxlm_coordinator={address}", "--jaxlm_num_processes=2",
         "--jaxlm_process_id=1", "--jaxlm_init_timeout=2", "--workdir=/nonexistent"])
    self.assertNotEqual(code, 0)
    self.assertIn(f"TimeoutError: jax.distributed: no coordinator reachable at {address} after "
                  "2 s", err)
    self.assertIn("--jaxlm_init_timeout / JAXLM_INIT_TIMEOUT", err)
    self.assertLess(seconds, 20)

  def test_unreachable_coordinator_env_timeout(self):
    address = f"127.0.0.1:{_unused_port()}"
    env = {"JAXLM_COORDINATOR": address, "JAXLM_NUM_PROCESSES": "2", "JAXLM_PROCESS_ID": "1",
           "JAXLM_INIT_TIMEOUT": "1"}
    code, err, _ = _run(["-c", "from jaxlm import distributed; distributed.maybe_initialize()"],
                        env)
    self.assertNotEqual(code, 0)
    self.assertIn(f"no coordinator reachable at {address} after 1 s", err)

  def test_timeout_reaches_jax_and_bad_values_are_named(self):
    with socket.socket() as server, mock.patch.object(jax.distributed, "initialize") as init:
      server.bind(("127.0.0.1", 0))
      server.listen()
      address = f"127.0.0.1:{server.getsockname()[1]}"
      with mock.patch.dict(os.environ, {"JAXLM_INIT_TIMEOUT": "abc"}):
        with self.assertRaisesRegex(ValueError, "JAXLM_INIT_TIMEOUT='abc' is not an integer"):
          distributed.maybe_initialize(address, 2, 1)
      with self.assertRaisesRegex(ValueError, "init timeout 0 s .* must be >= 1"):
        distributed.maybe_initialize(address, 2, 1, init_timeout=0)
      with self.assertRaisesRegex(ValueError, "'nohost' is not host:port"):
        distributed.maybe_initialize("nohost", 2, 1, init_timeout=1)
      init.assert_not_called()
      try:
        self.assertTrue(distributed.maybe_initialize(address, 2, 1, init_timeout=7))
      finally:
        distributed._initialized = False  # pylint: disable=protected-access
    init.assert_called_once_with(coordinator_address=address, num_processes=2, process_id=1,
                                 initialization_timeout=7)


if __name__ == "__main__":
  absltest.main()
