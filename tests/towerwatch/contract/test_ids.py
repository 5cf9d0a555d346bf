from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from towerwatch.contract import (
    BootId,
    ContractError,
    Identifier,
    IdentifierError,
    RequestId,
    check_boot_id,
    check_identifier,
    check_request_id,
    new_boot_id,
    new_request_id,
)

GOOD_IDENTIFIERS = ["a", "0", "tower-a", "lift_1", "b2-pump-3", "9th_floor", "x" * 64]
BAD_IDENTIFIERS = [
    pytest.param("", id="empty"),
    pytest.param("Lift", id="uppercase"),
    pytest.param("-lift", id="leading-dash"),
    pytest.param("_lift", id="leading-underscore"),
    pytest.param("a/b", id="slash"),
    pytest.param("a+", id="plus"),
    pytest.param("#", id="hash"),
    pytest.param("a b", id="space"),
    pytest.param("a.b", id="dot"),
    pytest.param("lift\n", id="trailing-newline"),
    pytest.param("é", id="non-ascii"),
    pytest.param("x" * 65, id="too-long"),
]


class _Holder(BaseModel):
    ident: Identifier
    request_id: RequestId | None = None
    boot_id: BootId | None = None


@pytest.mark.parametrize("value", GOOD_IDENTIFIERS)
def test_good_identifiers_pass(value: str) -> None:
    assert check_identifier(value, "device") == value
    assert _Holder(ident=value).ident == value


@pytest.mark.parametrize("value", BAD_IDENTIFIERS)
def test_bad_identifiers_rejected(value: str) -> None:
    with pytest.raises(IdentifierError, match="device"):
        check_identifier(value, "device")
    with pytest.raises(ValidationError):
        _Holder(ident=value)


def test_identifier_error_is_a_contract_and_value_error() -> None:
    with pytest.raises(ContractError):
        check_identifier("Bad", "site")
    with pytest.raises(ValueError, match="site 'Bad'"):
        check_identifier("Bad", "site")


@pytest.mark.parametrize(
    "value",
    ["a", "A", "0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5bd9cb469fa16570867728950e", "_x"],
)
def test_good_request_ids(value: str) -> None:
    assert check_request_id(value) == value
    assert _Holder(ident="a", request_id=value).request_id == value


@pytest.mark.parametrize("value", ["", "a/b", "a+", "#", "a b", "a.b", "x" * 65, "id\n"])
def test_bad_request_ids(value: str) -> None:
    with pytest.raises(IdentifierError, match="request id"):
        check_request_id(value)


@pytest.mark.parametrize("value", ["abcdefgh", "0F8FAD5B-D9CB-469F", "x" * 64])
def test_good_boot_ids(value: str) -> None:
    assert check_boot_id(value) == value


@pytest.mark.parametrize("value", ["", "short", "abc_defgh", "abc defgh", "x" * 65])
def test_bad_boot_ids(value: str) -> None:
    with pytest.raises(IdentifierError, match="boot id"):
        check_boot_id(value)
    with pytest.raises(ValidationError):
        _Holder(ident="a", boot_id=value)


def test_generated_ids_are_valid_and_fresh() -> None:
    assert check_request_id(new_request_id()) != new_request_id()
    assert check_boot_id(new_boot_id()) != new_boot_id()
