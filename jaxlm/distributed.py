"""Multi-process (multi-host) set-up through `jax.distributed`, only when asked.

`maybe_initialize` connects this process to a coordinator when a coordinator address is given
(argument, e.g. from the experiments' `--jaxlm_coordinator` flag, or env `JAXLM_COORDINATOR`),
or when `JAXLM_DISTRIBUTED=auto` asks JAX to auto-detect a cluster (Slurm, Cloud TPU, MPI...).
Otherwise it does nothing, so single-process runs, tests and notebooks are unaffected.

On CPU, cross-process collectives use gloo (`jax_cpu_collectives_implementation`).

Initialisation waits at most `init_timeout` seconds (argument, e.g. from `--jaxlm_init_timeout`,
or env `JAXLM_INIT_TIMEOUT`; default JAX's 300). JAX aborts the whole process from C++ when a
connection times out, so a process other than 0 first waits for the coordinator's port itself
and raises a `TimeoutError` naming the address when it never opens.

After initialisation each process feeds its own slice of the global batch;
`host_local_to_global` assembles the global, mesh-sharded array without any cross-host copy
(`jax.make_array_from_process_local_data`).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from absl import logging
import jax
from jax.sharding import Mesh

from jaxlm import sharding as sharding_lib

_initialized = False


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError as e:
    raise ValueError(f"environment variable {name}={value!r} is not an integer") from e


DEFAULT_INIT_TIMEOUT = 300  # seconds, JAX's own default.


def wait_for_coordinator(address: str, timeout: float) -> None:
  """Returns once `host:port` accepts TCP connections; TimeoutError naming it after `timeout` s."""
  host, sep, port = address.rpartition(":")
  if not sep or not host or not port.isdigit():
    raise ValueError(f"coordinator address {address!r} is not host:port")
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
        return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise TimeoutError(
            f"jax.distributed: no coordinator reachable at {address} after {timeout:g} s "
            f"({e}); start process 0 first, check the address, or raise the limit with "
            "--jaxlm_init_timeout / JAXLM_INIT_TIMEOUT (seconds)") from e
      time.sleep(0.2)


def maybe_initialize(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, init_timeout: int | None = None) -> bool:
  """Calls `jax.distributed.initialize` when a multi-process run is requested.

  Precedence per field: argument, then environment variable (JAXLM_COORDINATOR,
  JAXLM_NUM_PROCESSES, JAXLM_PROCESS_ID, JAXLM_INIT_TIMEOUT). With no coordinator anywhere,
  JAXLM_DISTRIBUTED=auto lets JAX auto-detect the cluster; otherwise this is a no-op.
  `init_timeout` (seconds, default 300) bounds the wait for the coordinator's port to open and,
  again, JAX's wait for all processes to join; an unreachable coordinator raises TimeoutError
  naming its address.

  Returns:
    True if this call (or an earlier one) initialised the distributed runtime.
  """
  global _initialized
  if _initialized:
    return True
  coord = coordinator_address or os.environ.get("JAXLM_COORDINATOR") or None
  nproc = num_processes if num_processes is not None else _env_int("JAXLM_NUM_PROCESSES")
  pid = process_id if process_id is not None else _env_int("JAXLM_PROCESS_ID")
  auto = os.environ.get("JAXLM_DISTRIBUTED", "").lower() == "auto"
  if coord is None and not auto:
    if nproc not in (None, 1) or pid not in (None, 0):
      raise ValueError(f"num_processes={nproc} / process_id={pid} given without a coordinator "
                       "address (JAXLM_COORDINATOR or --jaxlm_coordinator)")
    return False
  if coord is not None and (nproc is None or pid is None):
    raise ValueError(f"coordinator {coord!r} given but num_processes={nproc}, process_id={pid}; "
                     "all three are required")
  if nproc is not None and pid is not None and not 0 <= pid < nproc:
    raise ValueError(f"process_id={pid} is outside [0, num_processes={nproc})")
  timeout = init_timeout if init_timeout is not None else _env_int("JAXLM_INIT_TIMEOUT")
  timeout = DEFAULT_INIT_TIMEOUT if timeout is None else timeout
  if timeout < 1:
    raise ValueError(f"init timeout {timeout} s (--jaxlm_init_timeout / JAXLM_INIT_TIMEOUT) "
                     "must be >= 1")
  logging.info("jax.distributed: process %s/%s joining coordinator %s (timeout %d s)", pid, nproc,
               coord or "auto-detected", timeout)
  if coord is not None and pid != 0:  # Process 0 hosts the coordinator.
    wait_for_coordinator(coord, timeout)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; harmless else.
  jax.distributed.initialize(coordinator_address=coord, num_processes=nproc, process_id=pid,
                             initialization_timeout=timeout)
  logging.info("jax.distributed: process %d/%d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  _initialized = True
  return True


def host_local_to_global(local_batch: Any, mesh: Mesh) -> Any:
  """Global arrays from this process's rows of the batch (leading axis split over processes).

  Each process passes `global_batch_size / process_count` rows; the result is sharded along
  the batch axis over (`data`, `fsdp`) of `mesh`.
  """
  sharding = sharding_lib.batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local_batch)


def process_slice(global_batch_size: int) -> slice:
  """The rows of a global batch that this process should load."""
  n, i = jax.process_count(), jax.process_index()
  if global_batch_size % n:
    raise ValueError(f"global batch size {global_batch_size} is not divisible by "
                     f"process_count={n}")
  per = global_batch_size // n
  return slice(i * per, (i + 1) * per)
