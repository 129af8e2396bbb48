"""deploy/.env from deploy/env.example, every empty secret (`*_SECRET=`, `*_PASSWORD=`)
given a random value (`make env`). An existing file is left as it is.

    python deploy/scripts/new_env.py deploy/env.example deploy/.env
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

EMPTY_SECRET = re.compile(r"^([A-Z][A-Z0-9_]*(?:SECRET|PASSWORD))=$", re.MULTILINE)


def fill(template: str) -> str:
    # Hex: random enough for JWT_SECRET, and safe inside the URLs that carry the passwords.
    return EMPTY_SECRET.sub(lambda m: f"{m.group(1)}={secrets.token_hex(32)}", template)


def main(template: str, target: str) -> int:
    path = Path(target)
    if path.exists():
        print(f"{target} exists: left as it is")
        return 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(fill(Path(template).read_text()))
    print(f"{target} written, its secrets random (mode 0600)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
