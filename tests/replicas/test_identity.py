"""A replica's identity (issue 14): `replica_id` names its claims and, unless the Kafka section
names one, its static group membership."""

from __future__ import annotations

import os
import socket

import pytest

from gateway.app import kafka_settings
from gateway.errors import ConfigError
from gateway.executor import default_replica_id
from gateway.settings import Settings, load_settings


def test_replica_id_is_the_kafka_static_membership_id_unless_one_is_given() -> None:
    assert kafka_settings(Settings(replica_id="gw-0")).group_instance_id == "gw-0"
    given = Settings(replica_id="gw-0", kafka={"group_instance_id": "static-7"})
    assert kafka_settings(given).group_instance_id == "static-7"
    assert kafka_settings(Settings()).group_instance_id is None  # dynamic membership


def test_without_replica_id_each_process_is_its_own_replica() -> None:
    assert default_replica_id() == f"{socket.gethostname()}-{os.getpid()}"


def test_a_replica_id_that_cannot_name_a_claim_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_REPLICA_ID", "gw#0")
    with pytest.raises(
        ConfigError, match=r"setting .replica_id. .*GATEWAY_REPLICA_ID.*gw#0.*pod name"
    ):
        load_settings()
