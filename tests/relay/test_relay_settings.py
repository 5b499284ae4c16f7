"""relay.* settings: a topic needs a destination, event types are the listener's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import RelaySettings


def test_off_by_default_and_comma_separated_lists() -> None:
    assert RelaySettings().topic is None
    relay = RelaySettings(
        topic="workflow-status-events",
        destination="kafka:workflow-events",
        workflow_names="a,b",  # type: ignore[arg-type]  # as the environment gives it
        event_types="completed, paused",  # type: ignore[arg-type]
    )
    assert relay.workflow_names == ["a", "b"] and relay.event_types == ["completed", "paused"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"topic": "t"}, "relay.topic 't' needs relay.destination"),
        (
            {"topic": "t", "destination": "kafka:d", "event_types": ["finalized"]},
            "relay.event_types: finalized unknown",
        ),
    ],
)
def test_mistakes_are_named(given: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RelaySettings(**given)  # type: ignore[arg-type]
    assert message in str(info.value)
