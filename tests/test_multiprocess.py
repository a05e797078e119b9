"""jaxreg across processes: ``jax.distributed`` on the loopback address (issue 12).

Two local processes (``tests/_multiprocess_worker.py``) join
``jax.distributed.initialize(coordinator_address="127.0.0.1:<free port>",
num_processes=2)`` with two CPU devices each (gloo collectives), train a small MLP
whose parameters and batch are sharded over the 4 devices with ``jaxreg.regularized``
and ``jaxreg.proximal_adam``, save and restore params and optimizer state with orbax
(the restored run continues bitwise like the uninterrupted one, shardings kept), and
gather the result. A third process, alone with 4 local devices, is the single-process
reference: the two runs agree to float32 rounding. Every process has a timeout and is
killed in ``finally``; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = pathlib.Path(__file__).with_name("_multiprocess_worker.py")
_spec = importlib.util.spec_from_file_location("_multiprocess_worker", WORKER)
_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_worker)
TIMEOUT_S = 150


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    flags = re.sub(r"--xla_force_host_platform_device_count=\S*", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    root = str(WORKER.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _start(nproc: int, devices: int, out: pathlib.Path, ckpt: pathlib.Path, procs: list) -> None:
    out.mkdir()
    ckpt.mkdir()
    port = str(_free_port()) if nproc > 1 else "0"
    for pid in range(nproc):
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(pid), str(nproc), port, str(out), str(ckpt)],
                env=_env(devices),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )


def _results(nproc: int, out: pathlib.Path) -> list[dict]:
    return [json.loads((out / f"result_{pid}.json").read_text()) for pid in range(nproc)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("multiprocess")
    procs: list[subprocess.Popen] = []
    try:  # the 2-process run and the 1-process reference run side by side
        _start(2, 2, base / "out2", base / "ckpt2", procs)
        _start(1, 4, base / "out1", base / "ckpt1", procs)
        logs = []
        for proc in procs:
            try:
                logs.append(proc.communicate(timeout=TIMEOUT_S)[0])
            except subprocess.TimeoutExpired:
                pytest.fail(f"a worker timed out after {TIMEOUT_S} s")
        for proc, log in zip(procs, logs, strict=True):
            assert proc.returncode == 0, log[-4000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    multi, single = _results(2, base / "out2"), _results(1, base / "out1")
    return multi, single, np.load(base / "out2" / "final.npz"), np.load(base / "out1" / "final.npz")


@pytest.mark.parametrize("check", _worker.CHECKS)
def test_every_process_passes(runs, check):
    multi, single, _, _ = runs
    for pid, results in enumerate(multi):
        assert results.get(check) == "ok", f"process {pid}: {results.get(check, 'missing')}"
    assert single[0].get(check) == "ok", single[0].get(check, "missing")


def test_two_processes_equal_one_process(runs):
    _, _, multi, single = runs
    assert sorted(multi.files) == sorted(single.files)
    assert any(name.startswith("proximal_adam") for name in multi.files)
    for name in multi.files:
        # Same mesh and shardings; the cross-process reductions (loss mean, clip norm)
        # may be summed in another order: float32 rounding only.
        np.testing.assert_allclose(multi[name], single[name], rtol=2e-6, atol=1e-7, err_msg=name)
