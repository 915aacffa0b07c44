"""The Lambda layer (what `sam build` makes of layers/core) holds what Lambda runs, and nothing else:
no development stack, no test stand-ins, no SMTP server."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from local_stack.template import project_root

LAYER = project_root() / ".aws-sam" / "build" / "CoreLayer" / "python"
# Packages that only the local stack, the bridge or the tests use: none may reach Lambda.
NOT_FOR_LAMBDA = {"moto", "trustme", "aiosmtpd", "local_stack", "smtp_bridge", "functions", "tests", "yaml", "werkzeug"}
FOREIGN_IMPORT = re.compile(rb"^\s*(?:from|import)\s+(moto|trustme|aiosmtpd|local_stack|smtp_bridge|functions)\b", re.M)


@pytest.fixture(scope="module")
def layer() -> Path:
    if not LAYER.is_dir():
        if os.environ.get("CI"):
            pytest.fail("no built layer: `make test` runs `make sam-build` before the tests")
        pytest.skip("no built layer (run `make sam-build`)")
    return LAYER


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_the_layer_ships_the_core_package_and_its_runtime_dependencies(layer: Path) -> None:
    names = {p.name for p in layer.iterdir()}
    assert {"mailrelay", "pydantic", "aws_lambda_powertools", "email_validator"} <= names
    print(f"built layer: {size(layer):,} bytes; mailrelay package: {size(layer / 'mailrelay'):,} bytes")


def test_the_layer_holds_no_development_stack_stand_ins_or_bridge(layer: Path) -> None:
    names = {p.name.split("-")[0].lower() for p in layer.iterdir()}
    assert not names & NOT_FOR_LAMBDA
    assert not (layer / "mailrelay" / "local").exists()
    assert not (layer / "mailrelay" / "cli").exists()
    importing = [
        str(f.relative_to(layer)) for f in (layer / "mailrelay").rglob("*.py") if FOREIGN_IMPORT.search(f.read_bytes())
    ]
    assert importing == []
