"""Secrets for the hub link (an MQTT password, an HTTP bearer token), read from files.

Never from line.toml: a config is readable by more people than it should be and gets
copied around. A secret file is named in ``[hub]`` (``password_file``, ``token_file``):
an absolute path, a systemd credential (LoadCredential=NAME:... in the unit puts it in
``$CREDENTIALS_DIRECTORY``, readable only by the service), or a path relative to the
config folder. The value is never logged, and errors name the file, not its content.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SecretError", "read_secret", "secret_path"]


class SecretError(Exception):
    """A secret file is missing, unreadable or empty (the message names the file only)."""


def secret_path(name: str, config_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the secret ``name`` is: absolute as given, a systemd credential, or in the
    config folder."""
    env = os.environ if env is None else env
    path = Path(name)
    if path.is_absolute():
        return path
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials and len(path.parts) == 1 and (Path(credentials) / name).exists():
        return Path(credentials) / name
    return config_dir / path


def read_secret(
    name: str, what: str, config_dir: Path, env: Mapping[str, str] | None = None
) -> str:
    """The secret's value: the file's first line, without its line end."""
    path = secret_path(name, config_dir, env)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"cannot read the {what} from {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"the {what} in {path} is not UTF-8 text") from None
    value = text.splitlines()[0] if text else ""
    if not value:
        raise SecretError(f"the {what} file {path} is empty")
    return value
