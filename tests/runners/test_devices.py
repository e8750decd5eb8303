from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from runners import autocast_dtype, default_num_workers, resolve_device
from runners.devices import NUM_WORKERS_ENV


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected and resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert autocast_dtype(torch.device("cpu")) is None
    with pytest.raises(ValueError, match="'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_worker_count_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NUM_WORKERS_ENV, "3")
    assert default_num_workers("bccs") == 3
    monkeypatch.delenv(NUM_WORKERS_ENV)
    assert default_num_workers("none") == 0
    assert 0 <= default_num_workers("bccs") <= 4
    monkeypatch.setenv(NUM_WORKERS_ENV, "many")
    with pytest.raises(ValueError, match="many"):
        default_num_workers("bccs")


def test_runners_imports_neither_optuna_nor_search_nor_spaces() -> None:
    code = (
        "import sys, runners; "
        "bad = [m for m in ('optuna', 'search', 'spaces') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
