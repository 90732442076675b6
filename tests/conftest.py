"""pytest set-up shared by every test file: 8 fake CPU devices, set before JAX starts.

Sharding tests need a multi-device mesh; XLA reads this flag once, when the backend starts, so
it is set here rather than in each test module (pytest-xdist workers import many modules).

JAX's persistent compilation cache is on for the suite (every compilation, however short): many
tests build the same jitted programs again (a killed run and its resume, two runs compared
bit for bit, the same tiny model in several modules, both xdist workers), and a cache hit skips
XLA. Measured on tests/pg_test.py's resume test: 95 s of CPU without the cache, 61 s with a cold
one, 31 s warm. Set JAX_COMPILATION_CACHE_DIR yourself to move it or to share it across runs.
"""
import os
import tempfile

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"jaxlm_tests_jit_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
