"""Open-relay probes (nmap smtp-open-relay's matrix and friends) are refused."""

from __future__ import annotations

# nmap smtp-open-relay.nse: MAIL FROM / RCPT TO forms, with domain=example.net, srvname=bridge.test.
NMAP_PROBES = [
    ("<>", "<relaytest@example.net>"),
    ("<antispam@example.net>", "<relaytest@example.net>"),
    ("<antispam@bridge.test>", "<relaytest@example.net>"),
    ("<antispam@[127.0.0.1]>", "<relaytest@example.net>"),
    ("<antispam@[127.0.0.1]>", "<relaytest%example.net@[127.0.0.1]>"),
    ("<antispam@[127.0.0.1]>", "<relaytest%example.net@bridge.test>"),
    ("<antispam@[127.0.0.1]>", '<"relaytest@example.net">'),
    ("<antispam@[127.0.0.1]>", '<"relaytest%example.net">'),
    ("<antispam@[127.0.0.1]>", "<relaytest@example.net@[127.0.0.1]>"),
    ("<antispam@[127.0.0.1]>", '<"relaytest@example.net"@[127.0.0.1]>'),
    ("<antispam@[127.0.0.1]>", "<relaytest@example.net@bridge.test>"),
    ("<antispam@[127.0.0.1]>", "<@[127.0.0.1]:relaytest@example.net>"),
    ("<antispam@[127.0.0.1]>", "<@bridge.test:relaytest@example.net>"),
    ("<antispam@[127.0.0.1]>", "<example.net!relaytest>"),
    ("<antispam@[127.0.0.1]>", "<example.net!relaytest@[127.0.0.1]>"),
    ("<antispam@[127.0.0.1]>", "<example.net!relaytest@bridge.test>"),
]

ROUTED_RECIPIENTS = [probe[1] for probe in NMAP_PROBES[4:]] + [
    "<@relay.example.org,@second.example.org:victim@example.net>",
    "<victim%example.net@example.com>",
    "<example.net!victim@example.com>",
]


def test_unauthenticated_probes_are_refused(start_bridge, queued):
    bridge = start_bridge()
    with bridge.starttls() as smtp:
        for mail_from, rcpt_to in NMAP_PROBES:
            smtp.rset()
            code, _ = smtp.docmd("MAIL", f"FROM:{mail_from}")
            assert code in (501, 530, 553), mail_from  # the null sender is refused as a path; the rest need AUTH
            assert smtp.docmd("RCPT", f"TO:{rcpt_to}")[0] == 503, rcpt_to
    assert queued() == []


def test_routing_tricks_are_refused_even_after_auth(start_bridge, shop_login, queued):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        for rcpt_to in ROUTED_RECIPIENTS:
            smtp.rset()
            assert smtp.docmd("MAIL", "FROM:<app@example.com>")[0] == 250
            code, reply = smtp.docmd("RCPT", f"TO:{rcpt_to}")
            assert code in (501, 553), (rcpt_to, reply)
            assert smtp.docmd("DATA")[0] == 503  # no recipient was taken
    assert queued() == []


def test_routing_tricks_in_the_sender_are_refused(start_bridge, shop_login):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        for mail_from in [
            "<@relay.example.org:app@example.com>",
            "<app%bank.example@example.com>",
            "<bank.example!app@example.com>",
            '<"app@bank.example"@example.com>',
        ]:
            code, _ = smtp.docmd("MAIL", f"FROM:{mail_from}")
            assert code in (501, 553), mail_from
