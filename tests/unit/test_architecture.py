"""Dependencies point inward (entry points -> core <- adapters): the import contract covers every core module."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import mailrelay

ROOT = Path(__file__).resolve().parents[2]
# What is not core: the adapters and the composition root (the development stack is another package).
NOT_CORE = {"mailrelay.adapters", "mailrelay.wiring"}


def contract() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (core,) = [c for c in config["contracts"] if c["type"] == "forbidden"]
    return core


def test_every_core_module_is_under_the_import_contract() -> None:
    modules = {f"mailrelay.{m.name}" for m in pkgutil.iter_modules(mailrelay.__path__)}
    assert modules - NOT_CORE == set(contract()["source_modules"])


def test_the_contract_forbids_the_adapters_and_the_entry_points() -> None:
    assert {"mailrelay.adapters", "local_stack", "smtp_bridge"} <= set(contract()["forbidden_modules"])
