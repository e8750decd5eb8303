"""grpc://host:port: Optuna's gRPC storage proxy (``optuna.storages.run_grpc_proxy_server`` in
front of any storage), for many workers that should not each hold a database connection. Needs
the ``grpc`` extra (grpcio)."""

from __future__ import annotations

import re

import optuna

from search.common.optuna_compat import no_experimental_warnings
from search.storage.forms import FORMS, StorageForm, port_problem
from search.storage.forms._rdb import StorageSettings
from search.storage.urls import split_url


def _address(url: str) -> tuple[str, int]:
    parts = split_url(url)
    host = parts.host if not isinstance(parts, str) else ""
    name, _, port = host.rpartition(":")
    return name.strip("[]"), int(port)


def _problem(rest: str) -> str | None:
    parts = split_url("grpc://" + rest)
    if isinstance(parts, str):
        return parts
    host = parts.host
    if parts.userinfo or parts.query or host.rpartition(":")[0] in ("", "[]") or ":" not in host:
        return "must be grpc://host:port, the address of an Optuna gRPC storage proxy"
    if parts.path.lstrip("/"):
        return "names a path; a gRPC proxy is only grpc://host:port"
    return port_problem(host)


def _open(url: str, settings: StorageSettings) -> optuna.storages.BaseStorage:
    try:
        import grpc  # noqa: F401 - Optuna's proxy needs it; say so in one line when it is missing
    except ImportError:
        raise ValueError(f"{url} needs grpcio: pip install -e '.[grpc]'") from None
    host, port = _address(url)
    with no_experimental_warnings():
        return optuna.storages.GrpcStorageProxy(host=host, port=port)


FORMS.add("grpc", StorageForm(
    name="grpc",
    # a number, not "port": a log filter shows "grpc://host:port" as <URL not shown> (it reads two ways)
    example="grpc://host:13000 (an Optuna gRPC storage proxy, at its port)",
    schemes=re.compile("grpc"),
    problem=_problem,
    open=_open,
    concurrent=True,
))
