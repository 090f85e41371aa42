"""OPC UA values and status codes in the driver's terms (asyncua types, no I/O).

* what a Bad status code means for the caller: the link is gone (DeviceUnavailable), the
  message did not decode (ProtocolError), or the machine said no (DeviceRejected);
* the variant type to write to a node of a given data type, and a config or parameter
  value converted to it;
* a job method's reply: nothing, or an Int32 return status where 0 is "accepted", as the
  ISA-95 job control methods of OPC 10031-4 report it;
* the node map's references as node ids and browse paths of the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError

from drivers.base import DeviceRejected, DeviceUnavailable, DriverError, ProtocolError
from drivers.opcua_machine.nodes import BrowsePath, ExplicitNodeId

__all__ = [
    "browse_path",
    "decode_return_status",
    "error_for_status",
    "explicit_node_id",
    "status_name",
    "value_to_variant",
    "variant_type_of",
]

# The service could not reach the machine, or the session/channel is gone: retry later.
_UNAVAILABLE = frozenset(
    {
        StatusCodes.BadTimeout,
        StatusCodes.BadRequestTimeout,
        StatusCodes.BadCommunicationError,
        StatusCodes.BadNoCommunication,
        StatusCodes.BadConnectionClosed,
        StatusCodes.BadNotConnected,
        StatusCodes.BadServerNotConnected,
        StatusCodes.BadServerHalted,
        StatusCodes.BadShutdown,
        StatusCodes.BadSecureChannelClosed,
        StatusCodes.BadSecureChannelIdInvalid,
        StatusCodes.BadSessionClosed,
        StatusCodes.BadSessionIdInvalid,
        StatusCodes.BadResourceUnavailable,
        StatusCodes.BadTcpServerTooBusy,
        StatusCodes.BadTooManySessions,
        StatusCodes.BadOutOfService,
    }
)
# The bytes did not make a valid message on one side or the other.
_GARBLED = frozenset(
    {
        StatusCodes.BadDecodingError,
        StatusCodes.BadEncodingError,
        StatusCodes.BadEncodingLimitsExceeded,
    }
)

# Scalar built-in data types (OPC 10000-6 §5.1.2: DataType ids 1..15 equal the variant
# type); an enumeration (Enumeration = i=29 and its subtypes) travels as Int32.
_ENUMERATION = 29
_SCALAR_TYPES = range(1, 16)


def status_name(code: int) -> str:
    """``BadInvalidState``-style name of a status code (hex when unknown)."""
    name = ua.StatusCode(ua.UInt32(code)).name
    return name if name not in ("Bad", "Good", "Uncertain") else f"0x{code:08X}"


def error_for_status(code: int, what: str) -> DriverError:
    """The driver error for a Bad status code answered to ``what``."""
    message = f"{what}: {status_name(code)}"
    if code in _UNAVAILABLE:
        return DeviceUnavailable(message)
    if code in _GARBLED:
        return ProtocolError(message)
    return DeviceRejected(message)


def variant_type_of(data_type: ua.NodeId, current: ua.VariantType | None) -> ua.VariantType:
    """The variant type to write to a variable of ``data_type`` (``current``: the type of
    its value now, used for vendor-defined types such as a PLC's enumerations); ValueError
    when the driver cannot write it."""
    identifier = data_type.Identifier
    if data_type.NamespaceIndex == 0 and isinstance(identifier, int):
        if identifier in _SCALAR_TYPES:
            return ua.VariantType(identifier)
        if identifier == _ENUMERATION:
            return ua.VariantType.Int32
    if current is not None and current.value in _SCALAR_TYPES:
        return current
    raise ValueError(f"data type {data_type.to_string()} is not a scalar the driver can write")


_INTEGER_RANGES = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_BOOL_TEXT = {"true": True, "1": True, "false": False, "0": False}


def value_to_variant(value: bool | int | str, variant_type: ua.VariantType) -> ua.Variant:
    """``value`` as a variant of ``variant_type``; ValueError when it does not fit.

    Job parameters arrive as text and config values as TOML scalars; a PLC tag has one
    type, and a write of any other type is refused with BadTypeMismatch.
    """
    converted: object
    if variant_type == ua.VariantType.String:
        converted = value if isinstance(value, str) else str(value).lower()
    elif variant_type == ua.VariantType.Boolean:
        if isinstance(value, bool):
            converted = value
        elif isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
            converted = _BOOL_TEXT[value.strip().lower()]
        elif isinstance(value, int) and value in (0, 1):
            converted = bool(value)
        else:
            raise ValueError(f"{value!r} is not a Boolean")
    elif variant_type in _INTEGER_RANGES:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
        low, high = _INTEGER_RANGES[variant_type]
        if not low <= number <= high:
            raise ValueError(f"{value!r} is out of range for {variant_type.name}")
        converted = number
    elif variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            converted = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"cannot write {value!r} as {variant_type.name}")
    return ua.Variant(converted, variant_type)


def decode_return_status(outputs: Sequence[ua.Variant] | None, what: str) -> int | None:
    """The method's return status (None when it returns nothing); ProtocolError when the
    reply is not one integer."""
    if not outputs:
        return None
    first = outputs[0]
    if first.VariantType not in _INTEGER_RANGES or isinstance(first.Value, bool):
        raise ProtocolError(
            f"{what}: expected an integer return status, got {first.VariantType.name} "
            f"{first.Value!r}"
        )
    status: int = first.Value
    return status


def explicit_node_id(ref: ExplicitNodeId, namespaces: Sequence[str]) -> ua.NodeId:
    """The node id of an explicit reference on a server with this namespace array;
    DeviceRejected when its namespace is not there."""
    if ref.namespace_uri is not None:
        if ref.namespace_uri not in namespaces:
            raise DeviceRejected(f"node map: namespace of {ref} is not on the machine")
        index = namespaces.index(ref.namespace_uri)
    else:
        index = ref.namespace_index or 0
    try:
        return ua.NodeId.from_string(f"ns={index};{ref.identifier}")
    except (ValueError, UaError) as exc:
        raise DeviceRejected(f"node map: {ref}: {exc}") from None


def browse_path(path: BrowsePath, namespace_index: int) -> ua.RelativePath:
    """A browse path as the RelativePath of TranslateBrowsePathsToNodeIds: forward
    hierarchical references, one browse name per segment."""
    hierarchical = ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences))
    return ua.RelativePath(
        Elements=[
            ua.RelativePathElement(
                ReferenceTypeId=hierarchical,
                # asyncua marks OPC UA booleans with a class of its own; a bool is sent.
                IsInverse=cast(ua.Boolean, False),
                IncludeSubtypes=cast(ua.Boolean, True),
                TargetName=ua.QualifiedName(segment, namespace_index),
            )
            for segment in path.segments
        ]
    )
