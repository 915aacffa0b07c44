"""The viewer's JSON API over captured mail, as test suites use it (and the README's pytest example, run)."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.support import wait_for
from tests.viewer.conftest import ROOT

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n% a tiny file\n"


def test_a_message_with_html_text_and_attachment_is_described_in_full(stack):
    subject = f"Receipt {uuid.uuid4().hex[:8]}"
    message_id = stack.send(
        to=["Alice <alice@example.org>"], cc=["carol@example.org"], subject=subject,
        text="Thanks for your order.", html="<p>Thanks for <b>your order</b>.</p>",
        attachments=[{"filename": "receipt.pdf", "content_type": "application/pdf",
                      "content": base64.b64encode(PDF).decode()}],
        headers={"X-Order": "1234"},
    )  # fmt: skip
    message = stack.settled(message_id)
    assert (message["id"], message["mailrelay_id"], message["state"]) == (message_id, message_id, "delivered")
    assert message["subject"] == subject and message["headers"]["Subject"] == [subject]
    assert message["headers"]["X-Order"] == ["1234"]
    assert message["addresses"]["to"] == [{"name": "Alice", "address": "alice@example.org"}]
    assert message["addresses"]["cc"] == [{"name": "", "address": "carol@example.org"}]
    assert message["text"].strip() == "Thanks for your order."
    assert "<b>your order</b>" in message["html"]
    (attachment,) = message["attachments"]
    assert attachment | {"url": None} == {"part": attachment["part"], "filename": "receipt.pdf", "url": None,
                                          "content_type": "application/pdf", "size": len(PDF),
                                          "content_id": None, "inline": False}  # fmt: skip
    download = httpx.get(stack.viewer + attachment["url"], timeout=10)
    assert download.content == PDF and download.headers["content-disposition"].startswith("attachment")
    assert message["status"]["recipients"][0]["reply"]["code"] == 250
    assert [t["kind"] for t in message["timeline"]] == ["accepted", "attempt", "delivered"]

    raw = httpx.get(f"{stack.viewer}/api/v1/messages/{message_id}/raw", timeout=10)
    assert raw.status_code == 200
    assert hashlib.sha256(raw.content).hexdigest() == message["status"]["sha256"]  # exactly what was accepted


def test_list_is_newest_first_and_searchable(stack):
    tag = uuid.uuid4().hex[:8]
    first = stack.send(subject=f"first {tag}", to=["bob@example.org"])
    # Each test bounces its own address: a bounce puts the address on the dev client's suppression list.
    bounced = f"bounce+{tag}@{stack.info['simulator_domain']}"
    second = stack.send(subject=f"second {tag}", to=[bounced])
    stack.settled(first), stack.settled(second)

    def listed(query: str, **params: object) -> list[str]:
        got = httpx.get(f"{stack.viewer}/api/v1/messages", params={"query": query, **params}, timeout=10)
        assert got.status_code == 200, got.text
        return [m["id"] for m in got.json()["messages"]]

    assert listed(tag) == [second, first]
    assert listed(f"{tag} state:failed") == [second]
    assert listed(f"to:bob@example.org {tag}") == [first]
    assert listed(f"subject:first {tag}") == [first]
    assert listed(tag, limit=1) == [second]
    page = httpx.get(f"{stack.viewer}/api/v1/messages", params={"query": tag, "limit": 1}, timeout=10).json()
    assert (page["total"], page["count"]) == (2, 1)
    summary = page["messages"][0]
    assert (summary["state"], summary["subject"], summary["to"]) == (
        "failed",
        f"second {tag}",
        [bounced],
    )


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/messages?limit=0", 422, "limit"),
        ("/api/v1/messages?limit=ten", 422, "limit"),
        ("/api/v1/messages?limit=1001", 422, "limit"),
        ("/api/v1/messages?query=" + "x" * 501, 422, "query"),
        ("/api/v1/messages/0123456789abcdef0123456789abcdef", 404, None),
        ("/api/v1/messages/0123456789abcdef0123456789abcdef/raw", 404, None),
        ("/api/v1/nothing", 404, None),
    ],
)
def test_bad_requests_get_a_precise_problem(stack, path, status, field):
    got = httpx.get(stack.viewer + path, timeout=10)
    assert got.status_code == status
    assert got.headers["content-type"] == "application/problem+json"
    problem = got.json()
    assert problem["status"] == status and problem["detail"]
    if field:
        assert problem["errors"][0]["field"] == field


def test_requests_for_another_host_name_are_refused(stack):
    # a page elsewhere could otherwise read the viewer through DNS rebinding
    got = httpx.get(f"{stack.viewer}/api/v1/messages", headers={"Host": "attacker.example"}, timeout=10)
    assert got.status_code == 400


def test_the_readme_pytest_example_passes(stack, tmp_path):
    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(# test_welcome_mail\.py\n.*?)```", readme, re.S)
    (stack.home / "test_welcome_mail.py").write_text(example)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_welcome_mail.py"],
        cwd=stack.home, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_clear_all_empties_the_list_and_new_mail_still_arrives(stack):
    before = stack.send(subject="before clearing")
    stack.settled(before)
    cleared = httpx.delete(f"{stack.viewer}/api/v1/messages", timeout=10)
    assert cleared.status_code == 200 and cleared.json()["deleted"] >= 1
    listing = httpx.get(f"{stack.viewer}/api/v1/messages", timeout=10).json()
    assert listing["messages"] == [] and listing["total"] == 0
    assert httpx.get(f"{stack.viewer}/api/v1/messages/{before}", timeout=10).status_code == 404
    after = stack.send(subject="after clearing")
    wait_for(lambda: [m["id"] for m in httpx.get(f"{stack.viewer}/api/v1/messages", timeout=10).json()["messages"]]
             == [after], 30, "the new message in the list")  # fmt: skip
