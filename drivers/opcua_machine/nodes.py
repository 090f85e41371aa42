"""How the node map names a node: a browse path or an explicit node id (no I/O here).

* ``Machine/State`` — a browse path from the Objects folder; every segment is a browse
  name in the config's ``namespace_uri``. Preferred: it survives a server that numbers its
  namespaces differently after an update.
* ``nsu=urn:vendor:machine;s=Machine.State`` — an explicit node id in a namespace given by
  its URI (OPC 10000-6 §5.3.1.10 "ExpandedNodeId" string form).
* ``ns=2;i=6021`` or ``i=2258`` — an explicit node id with a namespace index (0 when left
  out). Indexes are assigned by the server and may change; use them only when the machine
  documents them as fixed.

Identifiers are ``i=`` (numeric), ``s=`` (string), ``g=`` (GUID) or ``b=`` (base64 bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BrowsePath", "ExplicitNodeId", "NodeRef", "parse_node_ref"]

_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_EXPLICIT = re.compile(
    r"^(?:ns=(?P<ns>\d+);|nsu=(?P<nsu>[^;]+);)?"
    rf"(?P<identifier>i=\d+|s=.+|g={_GUID}|b=[A-Za-z0-9+/]+={{0,2}})$",
    re.DOTALL,
)
# Looks like a node id (so it is not taken for a browse path) but does not parse as one.
_NODE_ID_LIKE = re.compile(r"^(?:ns=|nsu=|[isgb]=)")


@dataclass(frozen=True, slots=True)
class BrowsePath:
    """Browse names from the Objects folder down to the node, in the config's namespace."""

    segments: tuple[str, ...]

    @property
    def parent(self) -> BrowsePath | None:
        """The path of the node that holds this one (a method's object), if any."""
        return BrowsePath(self.segments[:-1]) if len(self.segments) > 1 else None

    def __str__(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True, slots=True)
class ExplicitNodeId:
    """A node id as written: ``identifier`` keeps its ``i=``/``s=``/… prefix."""

    identifier: str
    namespace_index: int | None = None  # from "ns="; None with "nsu=" or when left out
    namespace_uri: str | None = None  # from "nsu="

    def __str__(self) -> str:
        if self.namespace_uri is not None:
            return f"nsu={self.namespace_uri};{self.identifier}"
        if self.namespace_index is not None:
            return f"ns={self.namespace_index};{self.identifier}"
        return self.identifier


NodeRef = BrowsePath | ExplicitNodeId


def parse_node_ref(text: str) -> NodeRef:
    """Parse one node map entry; ValueError with the reason when it is neither form."""
    if not text or text != text.strip():
        raise ValueError("empty, or leading/trailing spaces")
    if match := _EXPLICIT.match(text):
        ns = match.group("ns")
        return ExplicitNodeId(
            identifier=match.group("identifier"),
            namespace_index=int(ns) if ns is not None else None,
            namespace_uri=match.group("nsu"),
        )
    if _NODE_ID_LIKE.match(text):
        raise ValueError(
            f"{text!r} is not a valid node id: write ns=<index>;i=<number> (or s=, g=, b=), "
            "nsu=<namespace uri>;s=<name>, or a browse path like Machine/State"
        )
    segments = tuple(text.split("/"))
    if any(not segment for segment in segments):
        raise ValueError(f"{text!r}: a browse path has no empty segments (Machine/State)")
    return BrowsePath(segments)
