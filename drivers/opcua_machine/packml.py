"""PackML machine states (ANSI/ISA-TR88.00.02) and the decoding of a machine's raw tag values.

Machines report their state as a code, and the codes differ between specifications: the
TR88 PackTags ``Status.StateCurrent`` used by OPC 30050 has Idle = 4 and Execute = 6, the
OPC 30060 (TMC) ``StateEnumeration`` has Idle = 2 and Execute = 4, and some machines send
names. So the line works with state *names* and each machine's config maps its codes to
them. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

__all__ = [
    "FAULT_STATES",
    "RUNNING_STATES",
    "TR88_STATE_CODES",
    "UNKNOWN_STATE",
    "PackMLState",
    "decode_count",
    "decode_state",
    "decode_text",
    "state_lookup",
]


class PackMLState(enum.StrEnum):
    """The 17 PackML states; "-ING" states are acting (transient), the others wait."""

    CLEARING = "CLEARING"
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    IDLE = "IDLE"
    SUSPENDED = "SUSPENDED"
    EXECUTE = "EXECUTE"
    STOPPING = "STOPPING"
    ABORTING = "ABORTING"
    ABORTED = "ABORTED"
    HOLDING = "HOLDING"
    HELD = "HELD"
    UNHOLDING = "UNHOLDING"
    SUSPENDING = "SUSPENDING"
    UNSUSPENDING = "UNSUSPENDING"
    RESETTING = "RESETTING"
    COMPLETING = "COMPLETING"
    COMPLETE = "COMPLETE"


# What a machine's state becomes when its code is not in the map (or of the wrong type).
UNKNOWN_STATE = "UNKNOWN"

# ISA-TR88.00.02 PackTags Status.StateCurrent (0 is "Undefined" and is left unmapped, so
# it decodes as UNKNOWN).
TR88_STATE_CODES: Mapping[PackMLState, int] = {
    PackMLState.CLEARING: 1,
    PackMLState.STOPPED: 2,
    PackMLState.STARTING: 3,
    PackMLState.IDLE: 4,
    PackMLState.SUSPENDED: 5,
    PackMLState.EXECUTE: 6,
    PackMLState.STOPPING: 7,
    PackMLState.ABORTING: 8,
    PackMLState.ABORTED: 9,
    PackMLState.HOLDING: 10,
    PackMLState.HELD: 11,
    PackMLState.UNHOLDING: 12,
    PackMLState.SUSPENDING: 13,
    PackMLState.UNSUSPENDING: 14,
    PackMLState.RESETTING: 15,
    PackMLState.COMPLETING: 16,
    PackMLState.COMPLETE: 17,
}

# A job in one of these states is under way on the machine.
RUNNING_STATES = frozenset(
    {
        PackMLState.STARTING,
        PackMLState.EXECUTE,
        PackMLState.COMPLETING,
        PackMLState.SUSPENDING,
        PackMLState.SUSPENDED,
        PackMLState.UNSUSPENDING,
        PackMLState.UNHOLDING,
    }
)

# Held is PackML's state for an internal cause (a fault, missing material); aborting and
# aborted follow an emergency stop. A task on a machine in one of these states is held
# and an alarm raised. Suspended (starved/blocked from outside) is not a machine fault.
FAULT_STATES = frozenset(
    {PackMLState.HOLDING, PackMLState.HELD, PackMLState.ABORTING, PackMLState.ABORTED}
)


def state_lookup(codes: Iterable[tuple[str, int | str]]) -> dict[int | str, str]:
    """Invert a config's ``{state name: machine code}`` items for decoding."""
    return {code: name for name, code in codes}


def decode_state(raw: object, by_code: Mapping[int | str, str]) -> str:
    """The PackML name for a raw state value, or UNKNOWN_STATE.

    Values are not converted: a machine whose codes are integers and that sends "4" sends
    something we do not know. A bool is not an integer code, although Python says it is.
    """
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return UNKNOWN_STATE
    return by_code.get(raw, UNKNOWN_STATE)


def decode_count(raw: object) -> int:
    """A production counter's value; ValueError when it is not a non-negative integer."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"not a counter value: {raw!r}")
    return raw


def decode_text(raw: object) -> str | None:
    """A job id or stop reason as text, None for "none"; ValueError for other types.

    PackTags' ``Admin.StopReason.ID`` is an integer where 0 means no reason; other
    machines give a string, empty when there is none.
    """
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"not a text or integer value: {raw!r}")
    if isinstance(raw, int):
        return str(raw) if raw != 0 else None
    return raw.strip() or None
