"""pytest set-up shared by every test file: 8 fake CPU devices, set before JAX starts.

Sharding tests need a multi-device mesh; XLA reads this flag once, when the backend starts, so
it is set here rather than in each test module (pytest-xdist workers import many modules).
"""
import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
