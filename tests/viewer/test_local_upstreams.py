"""The local stack adds the simulator to the upstreams it delivers to, without overriding a developer's own."""

from __future__ import annotations

import json
from pathlib import Path

from local_stack.simulated import with_simulator
from mailrelay.delivery.upstreams import SIMULATOR_DOMAIN, parse_upstreams

COPIES = Path("/tmp/simulated")


def test_a_configured_list_gets_the_simulator_and_stays_valid():
    mine = [{"name": "corp", "host": "relay.corp.example", "port": 587}]
    upstreams, domain = with_simulator(json.dumps(mine), COPIES)
    parsed = parse_upstreams(upstreams, "MAILRELAY_UPSTREAMS")
    assert [u.name for u in parsed] == ["simulator", "corp"] and domain == SIMULATOR_DOMAIN


def test_a_list_with_its_own_simulator_keeps_it_and_its_domain():
    mine = json.dumps([{"type": "simulator", "domain": "Sim.Test.example"}])
    assert with_simulator(mine, COPIES) == (mine, "sim.test.example")


def test_a_list_that_is_not_json_is_left_for_delivery_to_report():
    assert with_simulator("[{", COPIES) == ("[{", None)
