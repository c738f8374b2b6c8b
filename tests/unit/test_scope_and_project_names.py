"""Two naming rules, in process: which CA scope a project's certificates come from, and how a project
name given on the command line becomes the cloud's ``<region>_<suffix>`` form (or is refused)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

# csscert internals under test (re-point here when they move).
from csscert.ca import REGION_SCOPE, scope_of
from csscert.errors import InvalidRequest
from csscert.identity import Identity
from csscert.settings import Settings

PROJECT_IDS = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@given(PROJECT_IDS)
def test_in_region_scope_every_project_shares_the_region_ca(project_id: str) -> None:
    assert scope_of("region", project_id) == REGION_SCOPE == "region"


@given(PROJECT_IDS)
def test_in_project_scope_each_project_is_its_own_scope(project_id: str) -> None:
    assert scope_of("project", project_id) == project_id


def _identity(region: str) -> Identity:
    """The naming rule needs only the settings; nothing here touches a store or a master key."""
    return Identity(cast(Any, None), cast(Any, None), Settings(region=region))


@pytest.mark.parametrize(
    ("given_name", "stored"),
    [
        ("logs", "eu-de_logs"),
        ("eu-de", "eu-de"),  # the region's own project
        ("eu-de_logs", "eu-de_logs"),  # already in the cloud's form
        ("  logs  ", "eu-de_logs"),
        ("eu-de-logs", "eu-de_eu-de-logs"),  # only "<region>_" counts as the prefix
        ("EU-DE_logs", "eu-de_EU-DE_logs"),
        ("x" * 64, "eu-de_" + "x" * 64),
    ],
)
def test_a_project_name_gets_the_region_prefix_once(given_name: str, stored: str) -> None:
    assert _identity("eu-de").project_name(given_name) == stored


@pytest.mark.parametrize("bad", ["", "   ", "has space", "tab\there", "a/b", "a\\b", "x" * 65, "new\nline"])
def test_a_project_name_with_spaces_slashes_or_over_64_characters_is_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="project name"):
        _identity("eu-de").project_name(bad)


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=70))
def test_any_project_name_is_refused_or_stored_under_the_region(name: str) -> None:
    try:
        stored = _identity("local-1").project_name(name)
    except InvalidRequest:
        return
    assert stored == "local-1" or stored.startswith("local-1_")
    assert _identity("local-1").project_name(stored) == stored  # idempotent
