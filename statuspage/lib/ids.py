"""Public ids: short random strings shaped like Statuspage's (12 lowercase base36 characters)."""
from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits
PUBLIC_ID_LENGTH = 12


def new_public_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))
