"""Object names and label values derived from VHostVersion names and vhosts (63-character limits)."""

from __future__ import annotations

import re

import pytest
from hub_operator.builders.workloads import (
    InvalidWorkload,
    dispatcher_workload_name,
    label_value,
    preferences_config_map_name,
)

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LONGEST_PERIMETER = "p" * 20 + "-" + "q" * 21  # 42 characters, the Perimeter name limit


@pytest.mark.parametrize(("vhost_version", "expected"), [
    ("15-15-v1.5", "dispatcher-15-15-v1-5"),
    ("15-nexsis-v1.8", "dispatcher-15-nexsis-v1-8"),
    ("15-gps-v3.4.1", "dispatcher-15-gps-v3-4-1"),
])
def test_workload_name(vhost_version: str, expected: str) -> None:
    assert dispatcher_workload_name(vhost_version) == expected
    assert preferences_config_map_name(vhost_version) == expected + "-preferences"


@pytest.mark.parametrize("vhost_version", [
    f"{LONGEST_PERIMETER}-v1234.1234",  # 53 characters: one too many with the prefix
    f"{LONGEST_PERIMETER}-v1234567.1234567",  # the 63-character VHostVersion name
    "a" * 50 + "-v1.0",
])
def test_long_names_are_shortened_with_a_hash(vhost_version: str) -> None:
    name = dispatcher_workload_name(vhost_version)
    assert len(name) <= 63 and DNS1035_LABEL.match(name)
    assert name.startswith("dispatcher-")
    assert re.search(r"-[0-9a-f]{8}$", name)
    config_map = preferences_config_map_name(vhost_version)
    assert len(config_map) <= 253 and DNS1123_SUBDOMAIN.match(config_map)


def test_names_that_fit_are_not_hashed() -> None:
    vhost_version = f"{LONGEST_PERIMETER}-v123.1234"  # dispatcher- + 52 = 63 characters
    assert dispatcher_workload_name(vhost_version) == f"dispatcher-{LONGEST_PERIMETER}-v123-1234"


def test_long_names_that_share_a_head_stay_distinct() -> None:
    first = dispatcher_workload_name(f"{LONGEST_PERIMETER}-v1234.1234")
    second = dispatcher_workload_name(f"{LONGEST_PERIMETER}-v1234.1235")
    assert first != second
    assert first[:-9] == second[:-9]


def test_dots_to_dashes_keeps_distinct_versions_distinct() -> None:
    names = {dispatcher_workload_name(name) for name in ("x-v1.23", "x-v12.3", "x-v1.2.3", "x-v1-v2.3")}
    assert len(names) == 4


@pytest.mark.parametrize("bad", ["", "15-15", "15-15_v1.5", "15-15-V1.5", "15-15-v1", "-15-v1.5", "15-15-v1.5.6.7"])
def test_not_a_vhost_version_name(bad: str) -> None:
    with pytest.raises(InvalidWorkload, match="is not a VHostVersion name: expected <perimeter>-v<version>"):
        dispatcher_workload_name(bad)


@pytest.mark.parametrize(("text", "expected"), [
    ("15-15_v1.5", "15-15_v1.5"),
    ("15-nexsis_v1.9", "15-nexsis_v1.9"),
])
def test_vhost_names_are_label_values_already(text: str, expected: str) -> None:
    assert label_value(text) == expected


@pytest.mark.parametrize("text", ["/15-15_v1.5", "15 15", "x" * 64, "_leading", "é", "-"])
def test_label_value_sanitises_and_hashes(text: str) -> None:
    value = label_value(text)
    assert len(value) <= 63 and LABEL_VALUE.match(value) and value
    assert value != text
    assert label_value(text) == value
    assert re.search(r"[0-9a-f]{8}$", value)


def test_label_values_of_different_texts_differ() -> None:
    assert label_value("15 15") != label_value("15/15")
