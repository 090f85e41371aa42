"""[picking]: pick requests to the warehouse from the plan (``material.requested``, contract
1.1; gateway/planning/picks.py).

For the work the plan in force puts within ``horizon_min`` of now, the gateway asks the
warehouse for what each station lacks, to be there ``lead_min`` before the first task that
needs it starts. A request is revised only when the need moved beyond the tolerance, so a
replan that changes little says nothing to the warehouse.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PickingSection"]


class PickingSection(BaseModel):
    """[picking] in line.toml. Times in line minutes, except ``recheck_s`` (real seconds)."""

    # As every section of line.toml (gateway/config/line.py): unknown keys refused, TOML's
    # types taken as they are.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # Off: no pick requests (the warehouse brings material by its own rules). Needs the
    # planner: without a plan there is nothing to look ahead at.
    enabled: bool = True
    # How far ahead of now the plan's work is requested.
    horizon_min: float = Field(default=120.0, gt=0, le=7 * 24 * 60)
    # need_by is the planned start of the first task the station cannot cover, less this:
    # the time to take the material in at the station before the work starts.
    lead_min: float = Field(default=15.0, ge=0, le=24 * 60)
    # An open request is revised when the need moved by more than the larger of
    # tolerance_abs (in the material's unit) and tolerance_rel × the station's need of it
    # within the horizon; a need that falls to nothing withdraws it whatever these say.
    tolerance_rel: float = Field(default=0.1, ge=0, le=10)
    tolerance_abs: float = Field(default=0.0, ge=0, le=1_000_000)
    # ... and when its need_by moved earlier by more than this (later is no hurry).
    need_by_step_min: float = Field(default=15.0, ge=0, le=24 * 60)
    # Besides each new plan, the need is looked at again this often: the horizon moves on.
    recheck_s: float = Field(default=60.0, ge=1, le=3600)
