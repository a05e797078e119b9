"""Every transform and optimizer on parameters sharded over 8 devices (issue 8).

The checks live in ``tests/_sharding_worker.py`` and run once, in a subprocess of
their own with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and
``JAX_PLATFORMS=cpu`` (the device count is fixed when JAX starts, so it cannot be
changed in this process). Each check is reported here as its own test: the
sharded step equals the single-device step, shardings are kept, elementwise steps
compile without cross-device collectives, group lasso over a sharded axis gives
the NumPy norms, and a run resumed from a checkpoint is bitwise the uninterrupted one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

WORKER = pathlib.Path(__file__).with_name("_sharding_worker.py")
_spec = importlib.util.spec_from_file_location("_sharding_worker", WORKER)
_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_worker)


@pytest.fixture(scope="module")
def results():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(WORKER)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(lines[-1])


def test_worker_reports_every_check(results):
    assert sorted(results) == sorted(_worker.CHECKS)


@pytest.mark.parametrize("check", _worker.CHECKS)
def test_sharded(results, check):
    assert results.get(check) == "ok", results.get(check, "check missing")
