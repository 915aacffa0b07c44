"""checkov over template.yaml and over its translation: no failure, and every skip explains itself.

checkov lives in its own environment (its pins clash with the SAM CLI's): .venv-tools/checkov, or set
CHECKOV to its executable. It runs offline (--skip-download, BC_SKIP_MAPPING).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.template.test_policy import SAM
from tests.template.translate import TEMPLATE, translate

CHECKOV = os.environ.get("CHECKOV") or str(TEMPLATE.parent / ".venv-tools" / "checkov" / "bin" / "checkov")
HAVE_CHECKOV = Path(CHECKOV).exists() or shutil.which(CHECKOV) is not None
needs_checkov = pytest.mark.skipif(not HAVE_CHECKOV, reason=f"checkov not installed at {CHECKOV}")


def skips(template: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {
        name: ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
        for name, resource in template["Resources"].items()
    }


def test_every_checkov_skip_carries_its_reason() -> None:
    found = {name: entries for name, entries in skips(SAM).items() if entries}
    assert found, "expected the documented skips in template.yaml"
    for name, entries in found.items():
        for entry in entries:
            assert re.fullmatch(r"CKV2?_AWS_\d+", entry.get("id", "")), (name, entry)
            assert len(entry.get("comment", "")) >= 40, f"{name}: skip {entry.get('id')} needs a real reason"


def run_checkov(path: Path) -> dict[str, Any]:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    done = subprocess.run(
        [CHECKOV, "-f", str(path), "--framework", "cloudformation", "--skip-download", "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    if "results" not in report:  # checkov prints a summary alone when every check passed with nothing to list
        report = {"results": {"failed_checks": [], "skipped_checks": []}, "summary": report}
    result: dict[str, Any] = report
    return result


def failures(report: dict[str, Any]) -> list[str]:
    return [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]


@needs_checkov
@pytest.mark.parametrize("form", ["sam", "translated"])
def test_checkov_finds_nothing_unexplained(form: str, tmp_path: Path) -> None:
    if form == "sam":
        path = TEMPLATE
    else:
        path = tmp_path / "translated.json"
        path.write_text(json.dumps(translate(SAM)))
    assert failures(run_checkov(path)) == []


@needs_checkov
def test_checkov_fails_when_a_skip_is_removed(tmp_path: Path) -> None:
    broken = copy.deepcopy(SAM)
    broken["Resources"]["DeliveryQueue"].pop("Metadata")
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(broken))  # intrinsics in their long form, which checkov reads too
    assert "CKV_AWS_27 AWS::SQS::Queue.DeliveryQueue" in failures(run_checkov(path))
