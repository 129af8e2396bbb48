"""The server's VAPID key pair (RFC 8292): PARLEY_VAPID_PRIVATE_KEY, else generated once and
kept in the data dir (0600), so every process and every restart signs with the same key
and browsers' subscriptions stay valid."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from parley.config import make_private_dir, write_private

KEY_FILE = "vapid_private.pem"


def load_vapid(private_key: str | None, data_dir: Path) -> Vapid02:
    if private_key:
        return Vapid02.from_string(private_key)
    path = data_dir / KEY_FILE
    if not path.exists():
        make_private_dir(data_dir)
        made = Vapid02()
        made.generate_keys()
        # Written aside then linked: several processes starting at once agree on one key.
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        write_private(tmp, made.private_pem())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    return Vapid02.from_pem(path.read_bytes())


def public_key(vapid: Vapid02) -> str:
    """The application server key a browser subscribes with (base64url, uncompressed P-256)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
