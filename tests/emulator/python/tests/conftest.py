"""What every emulator test module shares: the emulator as a subprocess on a
free loopback port, one ``endpoint`` per module, fresh accounts, boto3
clients and the ``/_dm/`` control routes.

The ``endpoint`` fixture is found by pytest on its own; the helpers are
imported with ``from conftest import ...`` (pytest's default ``prepend``
import mode puts this folder, which has no ``__init__.py``, on
``sys.path``).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # holds dm_emulator/
READY = "DM_EMULATOR_READY "
# One counter for the whole pytest run, so accounts never repeat across modules.
_accounts = itertools.count(1)


def start_emulator(*extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m dm_emulator`` (plus ``extra`` args); return it and its URL."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT))
    env.pop("MOTO_ACCOUNT_ID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dm_emulator", "--host", "127.0.0.1", "--port", "0", "--quiet", *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.append(proc.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    if not lines or not lines[0].startswith(READY):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"no READY line: {lines!r}\nstderr:\n{err}")
    # Drain stderr so the child never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()
    return proc, lines[0][len(READY) :].strip()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """One emulator per test module."""
    proc, url = start_emulator()
    yield url
    proc.kill()
    proc.wait(timeout=10)


def fresh_account() -> str:
    # Unique per test across all modules; the pid keeps concurrent pytest runs apart too.
    return f"9{os.getpid() % 100000:05d}{next(_accounts):06d}"


def client(endpoint: str, service: str, account: str, region: str = "us-east-1", *, retries: int = 1):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=account,
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": retries, "mode": "standard"}),
    )


def control(endpoint: str, method: str, route: str, payload: object | None = None) -> tuple[int, Any]:
    """One request to the emulator's ``/_dm/<route>``: (status, decoded JSON body)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{endpoint}/_dm/{route}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
