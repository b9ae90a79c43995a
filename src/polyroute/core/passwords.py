"""Login passwords: the length rule, and hashing with Argon2id (argon2-cffi's RFC 9106 low-memory profile).

A hash is the PHC string argon2 writes (``$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>``): it carries its
own random salt and parameters, so a hash made under older parameters still verifies, and
``needs_rehash`` says when to replace it. One hash costs about 0.1 s of CPU and 64 MiB: callers run
these functions off the event loop, and never more than a few at once.
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 1024
"""Longer input is refused rather than hashed (a bound on the work one request can ask for)."""

_HASHER: Final = PasswordHasher()
"""Stateless: the parameters only (argon2-cffi's defaults, RFC 9106's second recommended option)."""


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be a login password, or None when it can."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"must be at least {MIN_PASSWORD_CHARS} characters long"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"must be at most {MAX_PASSWORD_CHARS} characters long"
    return None


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` with a fresh random salt."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (False too when the stored hash is unreadable)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
