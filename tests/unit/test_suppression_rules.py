"""The rule table: which replies suppress an address, and how a suppressed recipient is answered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailrelay.delivery.replies import reply_from
from mailrelay.errors import InvalidRequest
from mailrelay.models.suppression import Suppression, SuppressionSource
from mailrelay.suppression.rules import refusal, suppression_reason
from mailrelay.suppression.service import normalise


@pytest.mark.parametrize(
    "code, text",
    [(550, "5.1.1 <bob@example.org>: User unknown"), (550, "5.1.2 Host unknown"), (556, "5.1.10 null MX"),
     (553, "5.1.3 bad address syntax"), (550, "5.1.6 mailbox moved")],
)  # fmt: skip
def test_replies_saying_the_address_does_not_exist_suppress_it(code: int, text: str) -> None:
    assert suppression_reason(reply_from(code, text)) == "hard_bounce"


@pytest.mark.parametrize(
    "code, text",
    [(550, "5.7.1 Message rejected by policy"), (554, "5.7.26 DMARC failure"), (552, "5.2.2 Mailbox full"),
     (450, "4.1.1 try later"), (550, "User unknown"), (554, "5.6.0 content rejected"), (250, "2.0.0 OK")],
)  # fmt: skip
def test_policy_content_full_mailbox_temporary_and_bare_replies_do_not(code: int, text: str) -> None:
    assert suppression_reason(reply_from(code, text)) is None


def test_a_hard_bounce_is_refused_with_5_1_1_and_the_other_reasons_with_5_7_1() -> None:
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    for reason, enhanced in [("hard_bounce", "5.1.1"), ("complaint", "5.7.1"), ("manual", "5.7.1"),
                             ("unsubscribe", "5.7.1")]:  # fmt: skip
        entry = Suppression(address="a@example.org", reason=reason, created_at=at, source=SuppressionSource())
        reply = refusal(entry)
        assert (reply.code, reply.enhanced) == (550, enhanced)
        assert reply.text == f"Recipient address is suppressed ({reason}, since 2026-12-01)"


def test_addresses_compare_with_the_domain_case_folded_and_idna_encoded() -> None:
    assert normalise(" Bob@EXAMPLE.org ") == "Bob@example.org"
    assert normalise("kunde@BÜCHER.de") == normalise("kunde@xn--bcher-kva.de") == "kunde@xn--bcher-kva.de"
    with pytest.raises(InvalidRequest) as refused:
        normalise("not an address")
    assert refused.value.problems[0].field == "email"
