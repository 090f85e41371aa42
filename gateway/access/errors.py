"""The one error of gateway/access: a change that cannot be made, said in the admin's words."""

from __future__ import annotations


class AccessError(Exception):
    """An account, token or terminal change refused (unknown name, bad input, a password
    against the policy); ``str()`` is the message for the person who asked."""
