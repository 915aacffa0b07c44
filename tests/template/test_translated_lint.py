"""cfn-lint on the CloudFormation SAM produces: it sees what it cannot see in the SAM source.

Example: E3505 (queue visibility timeout below the function timeout) only fires on the translated template,
where the event source mapping exists as a resource.
"""

from __future__ import annotations

import copy
import json

from cfnlint.api import ManualArgs, lint

from tests.template import policy
from tests.template.test_policy import SAM, props
from tests.template.translate import PSEUDO_PARAMETERS, translate

CONFIG = ManualArgs(regions=[PSEUDO_PARAMETERS["AWS::Region"]])

# Findings known and owned elsewhere, each with its reason. The test also fails when one of them goes away,
# so that the entry is removed with the fix.
KNOWN: dict[tuple[str, str], str] = {}


def findings(template: dict[str, object]) -> set[tuple[str, str]]:
    matches = lint(json.dumps(template), config=CONFIG)
    return {(m.rule.id, str(m.path[1]) if len(m.path) > 1 else "") for m in matches}


def test_translated_template_passes_cfn_lint() -> None:
    found = findings(translate(SAM))
    assert found - set(KNOWN) == set(), "new cfn-lint findings on the translated template"
    assert set(KNOWN) <= found, f"fixed, remove from KNOWN: {set(KNOWN) - found}"


def test_cfn_lint_on_the_translation_catches_visibility_below_timeout() -> None:
    broken = copy.deepcopy(SAM)
    props(broken, "WebhookQueue")["VisibilityTimeout"] = 1  # below the webhook function's timeout
    assert ("E3505", "WebhookQueue") in findings(translate(broken))


def test_behind_a_published_alias_the_policy_rule_catches_what_cfn_lint_cannot() -> None:
    # cfn-lint's E3505 does not follow an event source mapping to the function behind an alias
    # (AutoPublishAlias, for SnapStart); tests/template/policy.py does.
    broken = copy.deepcopy(SAM)
    props(broken, "DeliveryQueue")["VisibilityTimeout"] = 10  # below the delivery function's timeout
    translated = translate(broken)
    assert ("E3505", "DeliveryQueue") not in findings(translated)
    assert any("DeliveryQueue" in v for v in policy.visibility_covers_six_timeouts(translated))
