"""``[devices.NAME]`` of kind ``opcua_machine``: where the machine is, its node map, its
PackML state codes, how a job is downloaded, and the channel's security."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, model_validator

from drivers.base import DEVICE_MODEL_CONFIG, DeviceConfigBase
from drivers.opcua_machine.nodes import BrowsePath, parse_node_ref
from drivers.opcua_machine.packml import TR88_STATE_CODES, PackMLState

__all__ = [
    "Command",
    "MethodJob",
    "NodeMap",
    "OpcUaMachineConfig",
    "WritesJob",
    "method_and_object",
]


def _check_node_ref(text: str) -> str:
    parse_node_ref(text)
    return text


NodeRefText = Annotated[
    str,
    AfterValidator(_check_node_ref),
    Field(description="Browse path from Objects (Machine/State) or node id (ns=2;s=…, nsu=…;s=…)"),
]
StateName = Literal[
    "CLEARING",
    "STOPPED",
    "STARTING",
    "IDLE",
    "SUSPENDED",
    "EXECUTE",
    "STOPPING",
    "ABORTING",
    "ABORTED",
    "HOLDING",
    "HELD",
    "UNHOLDING",
    "SUSPENDING",
    "UNSUSPENDING",
    "RESETTING",
    "COMPLETING",
    "COMPLETE",
]
SecurityPolicy = Literal["Basic256Sha256", "None"]
SecurityMode = Literal["Sign", "SignAndEncrypt"]


def _method_object(method: str, object_ref: str | None, where: str) -> None:
    """A method is called on an object: the config names it, or it is the method's parent."""
    if object_ref is None and not isinstance(parse_node_ref(method), BrowsePath):
        raise ValueError(
            f"{where}: object is required when the method is a node id "
            "(with a browse path like Machine/StartJob the object is Machine)"
        )
    if object_ref is None and parse_node_ref(method) == BrowsePath((method,)):
        raise ValueError(
            f"{where}: the method {method!r} has no parent in its browse path; "
            "write it as Object/Method or give object"
        )


def method_and_object(method: str, object_ref: str | None) -> tuple[str, str]:
    """A method and the object it is called on (by default the method's parent)."""
    if object_ref is not None:
        return method, object_ref
    ref = parse_node_ref(method)
    parent = ref.parent if isinstance(ref, BrowsePath) else None
    if parent is None:  # the validators refuse such a config
        raise ValueError(f"method {method!r} has no object")
    return method, str(parent)


class NodeMap(BaseModel):
    """``[devices.NAME.nodes]``: the machine's tags the driver reads and monitors."""

    model_config = DEVICE_MODEL_CONFIG

    state: NodeRefText = Field(description="Current PackML state code (integer or string)")
    good_count: NodeRefText = Field(description="Cumulative count of good parts")
    bad_count: NodeRefText = Field(description="Cumulative count of bad (defective) parts")
    job_id: NodeRefText = Field(description="Id of the job running, or the last one run")
    stop_reason: NodeRefText | None = Field(
        default=None, description="Fault/stop reason (text, or integer code with 0 = none)"
    )
    completed_job_id: NodeRefText | None = Field(
        default=None,
        description="Id of the last job the machine completed; makes completion robust "
        "to an outage during which the machine went COMPLETE and back to IDLE",
    )


class Command(BaseModel):
    """A command to the machine: a method call, or a value written to a node."""

    model_config = DEVICE_MODEL_CONFIG

    method: NodeRefText | None = Field(default=None, description="Method to call (no arguments)")
    object: NodeRefText | None = Field(
        default=None, description="Object the method is called on; default: its parent"
    )
    node: NodeRefText | None = Field(default=None, description="Node to write the value to")
    value: bool | int | str = Field(
        default=True, description="Value written to node (e.g. true, or PackML command 2)"
    )

    def node_refs(self) -> tuple[str, ...]:
        """The node map entries the command uses."""
        if self.method is not None:
            return method_and_object(self.method, self.object)
        assert self.node is not None  # the validator requires one of them
        return (self.node,)

    @model_validator(mode="after")
    def _one_way(self) -> Command:
        if (self.method is None) == (self.node is None):
            raise ValueError("give either method (a method call) or node (a value write)")
        if self.method is not None:
            _method_object(self.method, self.object, "command")
        elif self.object is not None:
            raise ValueError("object goes with method, not with node")
        return self


class _JobBase(BaseModel):
    model_config = DEVICE_MODEL_CONFIG

    ready_states: list[StateName] = Field(
        default=["IDLE"],
        min_length=1,
        description="States in which the machine takes a job; in any other known state "
        "start_job refuses without asking the machine",
    )


class MethodJob(_JobBase):
    """``mode = "method"``: one method call with the job id, then the parameters."""

    mode: Literal["method"]
    method: NodeRefText = Field(description="Method called to download and start a job")
    object: NodeRefText | None = Field(
        default=None, description="Object the method is called on; default: its parent"
    )
    arguments: list[str] = Field(
        default=[],
        description="Personalisation parameter names passed after the job id, in this "
        "order (a missing one is passed as an empty string)",
    )

    @model_validator(mode="after")
    def _object(self) -> MethodJob:
        _method_object(self.method, self.object, "job")
        return self


class WritesJob(_JobBase):
    """``mode = "writes"``: write the job id and parameters, then a start command."""

    mode: Literal["writes"]
    job_id: NodeRefText = Field(description="Node the job id is written to")
    parameters: dict[str, NodeRefText] = Field(
        default={},
        description="Personalisation parameter name -> node it is written to (a missing "
        "one is written as an empty string, so nothing carries over from the last job)",
    )
    start: Command = Field(description="Command that starts the job once it is written")


def _tr88_state_codes() -> dict[StateName, int | str]:
    # PackMLState's values are exactly the StateName literals.
    return {state.value: code for state, code in TR88_STATE_CODES.items()}


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "opc.tcp" or not parts.hostname:
        raise ValueError(f"{url!r} is not an opc.tcp://host:port/path URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r}: bad port ({exc})") from None
    if port is None:
        raise ValueError(f"{url!r}: give the port, e.g. opc.tcp://{parts.hostname}:4840/")
    if parts.username or parts.password:
        raise ValueError("no user or password in the URL: use username and password_file")
    return url


class OpcUaMachineConfig(DeviceConfigBase):
    """A machine with an OPC UA server, driven as a PackML state machine."""

    kind: Literal["opcua_machine"]
    url: Annotated[str, AfterValidator(_check_url)] = Field(
        description="Server endpoint, opc.tcp://host:port/path"
    )
    namespace_uri: str = Field(
        min_length=1, description="Namespace of the browse paths in the node map"
    )
    nodes: NodeMap
    states: dict[StateName, int | str] = Field(
        default_factory=_tr88_state_codes,
        description="PackML state name -> the machine's code for it; default: TR88 PackTags "
        "codes (IDLE = 4, EXECUTE = 6, COMPLETE = 17 …)",
    )
    job: MethodJob | WritesJob = Field(discriminator="mode")
    reset: Command | None = Field(
        default=None, description="Command that clears a fault / brings the machine to IDLE"
    )
    security_policy: SecurityPolicy = Field(
        default="Basic256Sha256", description='"Basic256Sha256", or "None" with allow_insecure'
    )
    security_mode: SecurityMode = Field(
        default="SignAndEncrypt", description='"Sign" or "SignAndEncrypt"'
    )
    certificate: str | None = Field(
        default=None, description="Client certificate file (DER or PEM) for Basic256Sha256"
    )
    private_key: str | None = Field(
        default=None, description="Client private key file (PEM or DER) for Basic256Sha256"
    )
    server_certificate: str | None = Field(
        default=None,
        description="The machine's certificate: when given, only a server with it is accepted",
    )
    allow_insecure: bool = Field(
        default=False, description='Must be true for security_policy = "None"'
    )
    username: str | None = Field(default=None, min_length=1, description="User name, if any")
    password_file: str | None = Field(
        default=None, description="File holding the user's password (never inline)"
    )
    subscription_interval_ms: int = Field(
        default=250, ge=10, le=60_000, description="Publishing interval of the subscription"
    )
    keepalive_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="The link counts as lost when neither data nor a keep-alive arrived "
        "for this long",
    )
    queue_size: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Monitored-item queue; 1 = latest value only, as real PLC servers do",
    )

    def node_refs(self) -> set[str]:
        """Every node map entry of the config: tags, job and commands."""
        refs = {ref for ref in self.nodes.model_dump().values() if ref is not None}
        if isinstance(self.job, MethodJob):
            refs.update(method_and_object(self.job.method, self.job.object))
        else:
            refs.add(self.job.job_id)
            refs.update(self.job.parameters.values())
            refs.update(self.job.start.node_refs())
        if self.reset is not None:
            refs.update(self.reset.node_refs())
        return refs

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaMachineConfig:
        self._check_security()
        self._check_states()
        if self.keepalive_s * 1000 < 2 * self.subscription_interval_ms:
            raise ValueError(
                f"keepalive_s ({self.keepalive_s}) must cover at least two publishing "
                f"intervals (subscription_interval_ms = {self.subscription_interval_ms})"
            )
        return self

    def _check_security(self) -> None:
        if self.security_policy == "None":
            if not self.allow_insecure:
                raise ValueError(
                    'security_policy = "None" sends job data unsigned and unencrypted and '
                    "lets anyone on the network pose as the machine; set allow_insecure = "
                    "true to accept that explicitly"
                )
        elif self.certificate is None or self.private_key is None:
            raise ValueError(
                f"security_policy = {self.security_policy!r} needs certificate and "
                "private_key (the gateway's application instance certificate and key)"
            )
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs username")

    def _check_states(self) -> None:
        codes = list(self.states.values())
        if len({(type(code), code) for code in codes}) != len(codes):
            raise ValueError("states: two states have the same code")
        if len({type(code) for code in codes}) > 1:
            raise ValueError("states: codes are all integers or all strings, not both")
        missing = [s for s in (PackMLState.IDLE, PackMLState.EXECUTE) if s not in self.states]
        if missing:
            raise ValueError(f"states: {', '.join(missing)} must be mapped")
        if PackMLState.COMPLETE not in self.states and self.nodes.completed_job_id is None:
            raise ValueError(
                "job completion cannot be seen: map COMPLETE in states or give "
                "nodes.completed_job_id"
            )
        unmapped = [s for s in self.job.ready_states if s not in self.states]
        if unmapped:
            raise ValueError(f"job.ready_states: {', '.join(unmapped)} not in states")
