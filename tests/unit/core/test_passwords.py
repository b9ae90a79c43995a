"""Password hashing: Argon2id round trips, fresh salts, the length rule, unreadable and outdated hashes."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from polyroute.core.passwords import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(PASSWORD)


def test_hash_password_is_argon2id_and_never_contains_the_password(stored: str) -> None:
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_verify_password_accepts_the_password_and_refuses_others(stored: str) -> None:
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, PASSWORD + " ")
    assert not verify_password(stored, PASSWORD.upper())
    assert not verify_password(stored, "")


def test_hash_password_uses_a_fresh_salt_each_time(stored: str) -> None:
    again = hash_password(PASSWORD)
    assert again != stored
    assert verify_password(again, PASSWORD)


@pytest.mark.parametrize("garbage", ["", "not a hash", "$argon2id$v=19$m=65536,t=3,p=4$bad$bad", "$2b$12$abcdefghij"])
def test_verify_password_unreadable_hash_is_false(garbage: str) -> None:
    assert not verify_password(garbage, PASSWORD)


def test_verify_password_overlong_input_is_false_without_hashing(stored: str) -> None:
    assert not verify_password(stored, "x" * (MAX_PASSWORD_CHARS + 1))


def test_needs_rehash_only_for_other_parameters_or_garbage(stored: str) -> None:
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert not needs_rehash(stored)
    assert needs_rehash(weaker)
    assert verify_password(weaker, PASSWORD)  # old parameters still verify, then get replaced
    assert needs_rehash("garbage")


@pytest.mark.parametrize(
    ("password", "is_ok"),
    [
        ("a" * (MIN_PASSWORD_CHARS - 1), False),
        ("a" * MIN_PASSWORD_CHARS, True),
        ("é" * MIN_PASSWORD_CHARS, True),  # characters, not bytes
        ("a" * MAX_PASSWORD_CHARS, True),
        ("a" * (MAX_PASSWORD_CHARS + 1), False),
    ],
    ids=["11-chars", "12-chars", "12-non-ascii", "max", "over-max"],
)
def test_password_problem_enforces_length(password: str, is_ok: bool) -> None:
    problem = password_problem(password)
    assert (problem is None) is is_ok
    if not is_ok:
        assert "characters" in (problem or "")
