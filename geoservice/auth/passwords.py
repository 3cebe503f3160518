"""Password hashing: argon2id with the argon2-cffi defaults (RFC 9106's low-memory profile), in one place.

Every hash the service writes (accounts over the API and the CLI, a city pack's one-time passwords,
the demo's accounts) and every check goes through these two functions, so the cost is chosen once.
A hash carries its own parameters, so a check works on hashes made with any cost.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def hash_matches(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one ``password_hash`` was made from; a malformed hash matches nothing."""
    try:
        return bool(HASHER.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False
