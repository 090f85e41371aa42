"""The OPC UA machine driver: an asyncua client that follows a PackML machine and downloads
jobs to it.

One connection is one new ``asyncua.Client``: a client reused after a black-holed link can
hang in reconnect (FreeOpcUa/opcua-asyncio#1660), and asyncua's own ``auto_reconnect`` is
left off because the gateway's supervisor owns reconnects. ``connect`` resolves the node
map, reads every tag once (a re-created subscription does not replay what changed during
an outage, opcua-asyncio#70) and subscribes to them; ``run`` consumes the subscription and
raises DeviceUnavailable when the connection drops or neither data nor a keep-alive has
arrived for ``keepalive_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from drivers.base import DeviceRejected, DeviceUnavailable, DriverError, keep_cancellation
from drivers.opcua_machine.codec import (
    browse_path,
    decode_return_status,
    error_for_status,
    explicit_node_id,
    status_name,
    value_to_variant,
    variant_type_of,
)
from drivers.opcua_machine.config import (
    Command,
    MethodJob,
    OpcUaMachineConfig,
    WritesJob,
    method_and_object,
)
from drivers.opcua_machine.events import MachineEvent, MachineStatus
from drivers.opcua_machine.nodes import BrowsePath, parse_node_ref
from drivers.opcua_machine.packml import FAULT_STATES, UNKNOWN_STATE, state_lookup
from drivers.opcua_machine.pki import application_uri, load_certificate, load_private_key, read_file
from drivers.opcua_machine.tracker import MachineTracker

__all__ = ["EventSink", "OpcUaMachine"]

_log = logging.getLogger(__name__)

EventSink = Callable[[MachineEvent], None]

_T = TypeVar("_T")

# Identifies the gateway in the machine's session list; the application URI comes from the
# client certificate (servers check that they match).
_APPLICATION_NAME = "linegate"
_DEFAULT_APPLICATION_URI = "urn:linegate:gateway"
# A session left behind by a dead link is freed by the machine after this long rather
# than asyncua's default hour (servers with few session slots refuse new ones meanwhile).
_MIN_SESSION_TIMEOUT_MS = 60_000
# The server is asked for a keep-alive this many times per keepalive_s, so one lost
# publish response does not count as a dead link.
_KEEPALIVES_PER_WINDOW = 3
# OPC 10000-4 §5.13.2: the lifetime count must be at least three keep-alive counts.
_LIFETIME_PER_KEEPALIVE = 3


@dataclass(frozen=True, slots=True)
class _CommandNodes:
    """A command resolved on one connection: a method call or a typed write."""

    method: ua.NodeId | None = None
    object: ua.NodeId | None = None
    node: ua.NodeId | None = None
    value: ua.Variant | None = None


@dataclass(frozen=True, slots=True)
class _JobNodes:
    """The job download resolved on one connection."""

    method: ua.NodeId | None = None  # mode "method"
    object: ua.NodeId | None = None
    job_id: ua.NodeId | None = None  # mode "writes"
    job_id_type: ua.VariantType = ua.VariantType.String
    parameters: Mapping[str, tuple[ua.NodeId, ua.VariantType]] | None = None
    start: _CommandNodes | None = None


@dataclass(slots=True)
class _Link:
    """Everything that belongs to one connection; dropped as a whole by close()."""

    client: Client
    subscription: Subscription
    tags_by_node: dict[ua.NodeId, list[str]]
    job: _JobNodes
    reset: _CommandNodes | None
    subscribed_at: float


class OpcUaMachine:
    """A PackML machine behind an OPC UA server.

    ``on_event`` receives a MachineStatus on every change of state, counters, fault or job,
    and a JobFinished when a job downloaded by ``start_job`` completes; it must not block.
    """

    kind: ClassVar[str] = "opcua_machine"

    def __init__(self, name: str, config: OpcUaMachineConfig, on_event: EventSink) -> None:
        self._name = name
        self._config = config
        self._on_event = on_event
        self._tracker = MachineTracker(state_lookup(config.states.items()))
        self._link: _Link | None = None
        # One download at a time: a machine takes one job, and the writes of two
        # interleaved downloads would mix their parameters.
        self._job_lock = asyncio.Lock()
        self._reported_unknown: set[str] = set()
        self._connects = 0
        self._notifications = 0
        self._jobs_started = 0
        self._jobs_finished = 0
        self._jobs_refused = 0
        self._last_error: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> OpcUaMachineConfig:
        return self._config

    @property
    def status(self) -> MachineStatus | None:
        """The machine as last read (kept across reconnects), None before the first read."""
        return self._tracker.status

    @property
    def active_job(self) -> str | None:
        """The job downloaded by start_job that the machine has not finished yet."""
        return self._tracker.active_job

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Open a session, resolve the node map, read every tag and subscribe to them."""
        await self.close()
        client = Client(
            self._config.url,
            timeout=self._config.timeout_s,
            watchdog_intervall=self._config.keepalive_s,
        )
        try:
            await self._prepare(client)
            await self._guarded(client.connect(), "connect")
            link = await self._open_link(client)
        except BaseException as exc:
            await self._shutdown(client)
            self._note(exc)
            raise
        self._link = link
        self._connects += 1
        _log.info("%s: connected to %s (%s)", self._name, self._config.url, self._security_label())

    async def run(self) -> None:
        """Serve the subscription until cancelled; DeviceUnavailable when the link is lost."""
        link = self._require_link()
        try:
            await self._serve(link)
        except DriverError as exc:
            self._note(exc)
            raise

    async def _serve(self, link: _Link) -> None:
        # Checks of the link cost no I/O, so they can be frequent; the probe of the server
        # is asyncua's watchdog (a read every keepalive_s, connection marked lost on failure).
        check_s = min(1.0, self._config.keepalive_s / 4)
        while True:
            try:
                async with asyncio.timeout(check_s):
                    event = await anext(link.subscription)
            except TimeoutError:
                event = None
            except StopAsyncIteration:
                raise DeviceUnavailable("the subscription was closed") from None
            if isinstance(event, DataChangeEvent):
                self._on_data_change(link, event)
            elif isinstance(event, StatusChangeEvent):
                status = event.notification.Status
                if status is not None and not status.is_good():
                    raise DeviceUnavailable(f"subscription ended: {status_name(status.value)}")
            self._check_alive(link)

    async def close(self) -> None:
        """End the session; safe to call twice and when connect never succeeded."""
        link, self._link = self._link, None
        if link is not None:
            await self._shutdown(link.client)

    # -- commands --------------------------------------------------------------------------

    async def start_job(self, job_id: str, params: Mapping[str, str]) -> None:
        """Download a job with its personalisation parameters and start it.

        DeviceRejected when the machine is not in a ready state or refuses the job;
        DeviceUnavailable when it is not connected or does not answer in time. After
        DeviceUnavailable or ProtocolError the request may still have reached the machine,
        so the job stays tracked: if the machine runs it, JobFinished is still sent.
        """
        if not job_id:
            raise ValueError("job_id is empty")
        link = self._require_link()
        job = self._config.job
        status = self._tracker.status
        # UNKNOWN: the map lacks the code, so let the machine decide.
        if (
            status is not None
            and status.state != UNKNOWN_STATE
            and status.state not in job.ready_states
        ):
            self._jobs_refused += 1
            refusal = DeviceRejected(
                f"machine is {status.state}, not ready for job {job_id} "
                f"(ready in {', '.join(job.ready_states)})"
            )
            self._note(refusal)
            raise refusal
        async with self._job_lock:
            # Tracked before the download so a completion seen while it runs is not missed.
            self._tracker.job_started(job_id)
            try:
                if isinstance(job, MethodJob):
                    await self._call_job_method(link, job, job_id, params)
                else:
                    await self._write_job(link, job, job_id, params)
            except DeviceRejected as exc:
                self._tracker.job_abandoned(job_id)
                self._jobs_refused += 1
                self._note(exc)
                raise
            except DriverError as exc:
                self._note(exc)
                raise
        self._jobs_started += 1
        _log.info("%s: job %s downloaded", self._name, job_id)

    def adopt_job(self, job_id: str) -> None:
        """A job downloaded to this machine before the gateway restarted: report its
        finish (``JobFinished``) as for a job started here. Call before ``connect``."""
        self._tracker.adopt(job_id)

    async def reset(self) -> None:
        """Send the configured reset command (clear a fault, back to IDLE)."""
        link = self._require_link()
        if link.reset is None:
            raise DeviceRejected("no reset command in this machine's config")
        try:
            await self._command(link, link.reset, "reset")
        except DriverError as exc:
            self._note(exc)
            raise

    def diagnostics(self) -> dict[str, Any]:
        status = self._tracker.status
        link = self._link
        keepalive_age = None
        if link is not None:
            last = link.subscription.last_publish_at or link.subscribed_at
            keepalive_age = round(time.monotonic() - last, 3)
        return {
            "url": self._config.url,
            "security": self._security_label(),
            "connected": link is not None,
            "state": status.state if status else None,
            "good": status.good if status else None,
            "bad": status.bad if status else None,
            "fault": status.fault if status else None,
            "job_id": status.job_id if status else None,
            "active_job": self._tracker.active_job,
            "connects": self._connects,
            "notifications": self._notifications,
            "keepalive_age_s": keepalive_age,
            "jobs_started": self._jobs_started,
            "jobs_finished": self._jobs_finished,
            "jobs_refused": self._jobs_refused,
            "unknown_states": self._tracker.unknown_states,
            "last_unknown_state_code": (
                repr(self._tracker.last_unknown_code) if self._tracker.unknown_states else None
            ),
            "bad_values": self._tracker.bad_values,
            "last_bad_value": self._tracker.last_bad_value,
            "last_error": self._last_error,
        }

    # -- connect steps ---------------------------------------------------------------------

    async def _prepare(self, client: Client) -> None:
        """Identity and security of the new client (local files only, then endpoints)."""
        cfg = self._config
        client.name = client.description = _APPLICATION_NAME
        client.application_uri = _DEFAULT_APPLICATION_URI
        client.session_timeout = max(_MIN_SESSION_TIMEOUT_MS, int(cfg.keepalive_s * 4000))
        if cfg.username is not None:
            client.set_user(cfg.username)
        if cfg.password_file is not None:
            password = await read_file(cfg.password_file, "password_file")
            client.set_password(password.decode().rstrip("\r\n"))
        if cfg.security_policy == "None":
            return
        assert cfg.certificate is not None and cfg.private_key is not None  # config checks
        certificate, client_cert = await load_certificate(cfg.certificate, "certificate")
        private_key = await load_private_key(cfg.private_key)
        server_certificate = None
        mode = getattr(ua.MessageSecurityMode, cfg.security_mode)
        if cfg.server_certificate is not None:
            server_certificate, pinned = await load_certificate(
                cfg.server_certificate, "server_certificate"
            )
            await self._check_pinned(client, pinned, mode)
        # Servers check that the session's ApplicationUri is the one in the certificate.
        client.application_uri = application_uri(client_cert) or _DEFAULT_APPLICATION_URI
        # Without a pinned certificate, set_security asks the server for its endpoints over
        # an unsecured channel (a discovery exchange), so it runs under the timeout too.
        await self._guarded(
            client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=certificate,
                private_key=private_key,
                server_certificate=server_certificate,
                mode=mode,
            ),
            "secure channel setup",
        )

    async def _check_pinned(
        self, client: Client, pinned: x509.Certificate, mode: ua.MessageSecurityMode
    ) -> None:
        """Refuse a machine that presents another certificate than the pinned one.

        The secure channel would fail anyway (the request is encrypted for the pinned key
        and the server cannot read it, so it never answers); asking for the endpoints first
        turns that timeout into a clear refusal.
        """
        endpoints = await self._guarded(
            client.connect_and_get_server_endpoints(), "endpoint discovery"
        )
        try:
            endpoint = Client.find_endpoint(endpoints, mode, SecurityPolicyBasic256Sha256.URI)
        except UaError:
            raise DeviceRejected(f"the machine has no {self._security_label()} endpoint") from None
        # A chain is the certificates' DER one after the other, the server's own first.
        presented: bytes = endpoint.ServerCertificate or b""
        if not presented.startswith(pinned.public_bytes(serialization.Encoding.DER)):
            raise DeviceRejected("the machine's certificate is not the pinned server_certificate")

    async def _open_link(self, client: Client) -> _Link:
        cfg = self._config
        nodes = await self._resolve(client)
        tag_refs = {tag: ref for tag, ref in cfg.nodes.model_dump().items() if ref is not None}
        tags_by_node: dict[ua.NodeId, list[str]] = {}
        for tag, ref in tag_refs.items():
            tags_by_node.setdefault(nodes[ref], []).append(tag)
        job = await self._job_nodes(client, nodes)
        reset = await self._command_nodes(client, nodes, cfg.reset, "reset") if cfg.reset else None

        # Read every tag once before subscribing: what changed while the link was down is
        # not replayed by a new subscription.
        monitored = list(tags_by_node)
        values = await self._read(client, monitored, AttributeIds.Value, "read of the tags")
        initial: dict[str, object] = {}
        for nodeid, value in zip(monitored, values, strict=True):
            status = value.StatusCode
            if status is not None and not status.is_good():
                raise error_for_status(status.value, f"read of {', '.join(tags_by_node[nodeid])}")
            for tag in tags_by_node[nodeid]:
                initial[tag] = value.Value.Value if value.Value is not None else None

        subscription = await self._subscribe(client, monitored)
        link = _Link(
            client=client,
            subscription=subscription,
            tags_by_node=tags_by_node,
            job=job,
            reset=reset,
            subscribed_at=time.monotonic(),
        )
        self._emit(self._tracker.update(initial))
        return link

    async def _resolve(self, client: Client) -> dict[str, ua.NodeId]:
        """Node ids of every node map entry (by its text), resolved on this server."""
        cfg = self._config
        namespaces: list[str] = await self._guarded(
            client.get_namespace_array(), "read of the namespace array"
        )
        if cfg.namespace_uri not in namespaces:
            raise DeviceRejected(
                f"namespace {cfg.namespace_uri!r} is not on the machine "
                f"(it has {', '.join(namespaces[1:]) or 'none'})"
            )
        ns_index = namespaces.index(cfg.namespace_uri)

        resolved: dict[str, ua.NodeId] = {}
        paths: dict[str, BrowsePath] = {}
        for text in sorted(cfg.node_refs()):
            ref = parse_node_ref(text)
            if isinstance(ref, BrowsePath):
                paths[text] = ref
            else:
                resolved[text] = explicit_node_id(ref, namespaces)
        if paths:
            relative = [browse_path(path, ns_index) for path in paths.values()]
            results = await self._guarded(
                client.translate_browsepaths(
                    ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder)), relative
                ),
                "browse path lookup",
            )
            for text, result in zip(paths, results, strict=True):
                if not result.StatusCode.is_good() or not result.Targets:
                    raise DeviceRejected(
                        f"node map: {text!r} is not on the machine "
                        f"({status_name(result.StatusCode.value)})"
                    )
                target = result.Targets[0].TargetId
                resolved[text] = ua.NodeId(target.Identifier, target.NamespaceIndex)
        return resolved

    async def _job_nodes(self, client: Client, nodes: Mapping[str, ua.NodeId]) -> _JobNodes:
        job = self._config.job
        if isinstance(job, MethodJob):
            method, obj = method_and_object(job.method, job.object)
            return _JobNodes(method=nodes[method], object=nodes[obj])
        targets = [nodes[job.job_id], *(nodes[ref] for ref in job.parameters.values())]
        types = await self._write_types(client, targets, "job")
        parameters = {
            name: (nodes[ref], types[i + 1]) for i, (name, ref) in enumerate(job.parameters.items())
        }
        start = await self._command_nodes(client, nodes, job.start, "job start")
        return _JobNodes(
            job_id=nodes[job.job_id], job_id_type=types[0], parameters=parameters, start=start
        )

    async def _command_nodes(
        self, client: Client, nodes: Mapping[str, ua.NodeId], command: Command, what: str
    ) -> _CommandNodes:
        if command.method is not None:
            method, obj = method_and_object(command.method, command.object)
            return _CommandNodes(method=nodes[method], object=nodes[obj])
        assert command.node is not None  # the config allows exactly one of them
        target = nodes[command.node]
        (variant_type,) = await self._write_types(client, [target], what)
        try:
            value = value_to_variant(command.value, variant_type)
        except ValueError as exc:
            raise DeviceRejected(f"{what}: value for {command.node}: {exc}") from None
        return _CommandNodes(node=target, value=value)

    async def _write_types(
        self, client: Client, targets: list[ua.NodeId], what: str
    ) -> list[ua.VariantType]:
        """The variant type of each node, read from its DataType (a write of any other type
        is refused by the machine)."""
        data_types = await self._read(client, targets, AttributeIds.DataType, what)
        values = await self._read(client, targets, AttributeIds.Value, what)
        types: list[ua.VariantType] = []
        for nodeid, data_type, value in zip(targets, data_types, values, strict=True):
            current = value.Value.VariantType if value.Value is not None else None
            type_id = data_type.Value.Value if data_type.Value is not None else None
            if not isinstance(type_id, ua.NodeId):
                raise DeviceRejected(f"{what}: node {nodeid.to_string()} has no data type")
            try:
                types.append(variant_type_of(type_id, current))
            except ValueError as exc:
                raise DeviceRejected(f"{what}: node {nodeid.to_string()}: {exc}") from None
        return types

    async def _subscribe(self, client: Client, monitored: list[ua.NodeId]) -> Subscription:
        cfg = self._config
        interval = float(cfg.subscription_interval_ms)
        keepalive_count = max(
            1, int(cfg.keepalive_s * 1000 / _KEEPALIVES_PER_WINDOW / cfg.subscription_interval_ms)
        )
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=interval,
            RequestedLifetimeCount=keepalive_count * _LIFETIME_PER_KEEPALIVE,
            RequestedMaxKeepAliveCount=keepalive_count,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        # No handler: events queue up for run(), which consumes them in order.
        subscription = await self._guarded(
            client.create_subscription(params, handler=None), "subscription"
        )
        handles = await self._guarded(
            subscription.subscribe_data_change(
                [client.get_node(nodeid) for nodeid in monitored],
                # Queue size 1 = latest value only, as PLC servers revise it; asyncua's own
                # server would otherwise queue every change (dependency-probe pitfall 3).
                queuesize=cfg.queue_size,
                sampling_interval=ua.Double(interval),
            ),
            "subscription",
        )
        for nodeid, handle in zip(monitored, handles, strict=True):
            if isinstance(handle, ua.StatusCode):
                raise error_for_status(handle.value, f"monitoring {nodeid.to_string()}")
        return subscription

    # -- run steps -------------------------------------------------------------------------

    def _on_data_change(self, link: _Link, event: DataChangeEvent) -> None:
        self._notifications += 1
        tags = link.tags_by_node.get(event.node.nodeid, [])
        status = event.data.monitored_item.Value.StatusCode
        if status is not None and not status.is_good():
            # A Bad value (sensor fault, tag being initialised) carries no reading.
            self._tracker.bad_values += 1
            self._tracker.last_bad_value = f"{', '.join(tags)}: {status_name(status.value)}"
            return
        self._emit(self._tracker.update(dict.fromkeys(tags, event.value)))

    def _check_alive(self, link: _Link) -> None:
        if link.client.state is not UaClientState.CONNECTED:
            raise DeviceUnavailable(f"connection lost ({link.client.state.value})")
        last = link.subscription.last_publish_at or link.subscribed_at
        silent_s = time.monotonic() - last
        if silent_s > self._config.keepalive_s:
            raise DeviceUnavailable(f"no data or keep-alive for {silent_s:.1f} s")

    def _emit(self, events: list[MachineEvent]) -> None:
        for event in events:
            if isinstance(event, MachineStatus):
                self._log_status(event)
            else:
                self._jobs_finished += 1
                _log.info("%s: job %s finished", self._name, event.job_id)
            self._on_event(event)

    def _log_status(self, status: MachineStatus) -> None:
        was_faulted = status.previous in FAULT_STATES
        if status.faulted and not was_faulted:
            _log.warning("%s: machine %s: %s", self._name, status.state, status.fault or "-")
        elif was_faulted and not status.faulted:
            _log.info("%s: machine %s again", self._name, status.state)
        if status.state == UNKNOWN_STATE:
            code = repr(self._tracker.last_unknown_code)
            # Once per code: a machine stuck on an unmapped code would log every change.
            if code not in self._reported_unknown and len(self._reported_unknown) < 32:
                self._reported_unknown.add(code)
                _log.warning("%s: state code %s is not in the states map", self._name, code)

    # -- job and command steps -------------------------------------------------------------

    async def _call_job_method(
        self, link: _Link, job: MethodJob, job_id: str, params: Mapping[str, str]
    ) -> None:
        arguments = [ua.Variant(job_id, ua.VariantType.String)]
        arguments += [
            ua.Variant(params.get(name, ""), ua.VariantType.String) for name in job.arguments
        ]
        _warn_unused(self._name, params, job.arguments)
        assert link.job.method is not None and link.job.object is not None
        await self._call(link, link.job.method, link.job.object, arguments, f"job {job_id}")

    async def _write_job(
        self, link: _Link, job: WritesJob, job_id: str, params: Mapping[str, str]
    ) -> None:
        nodes = link.job
        assert nodes.job_id is not None and nodes.parameters is not None and nodes.start
        what = f"job {job_id}"
        writes: list[tuple[ua.NodeId, ua.Variant]] = []
        try:
            writes.append((nodes.job_id, value_to_variant(job_id, nodes.job_id_type)))
            for name, (nodeid, variant_type) in nodes.parameters.items():
                writes.append((nodeid, value_to_variant(params.get(name, ""), variant_type)))
        except ValueError as exc:
            raise DeviceRejected(f"{what}: {exc}") from None
        _warn_unused(self._name, params, list(job.parameters))
        await self._write(link, writes, f"{what} download")
        # The start command goes in a request of its own: a PLC may apply the writes of one
        # request in any order, and must see the parameters before the start.
        await self._command(link, nodes.start, f"{what} start")

    async def _command(self, link: _Link, command: _CommandNodes, what: str) -> None:
        if command.method is not None:
            assert command.object is not None
            await self._call(link, command.method, command.object, [], what)
        else:
            assert command.node is not None and command.value is not None
            await self._write(link, [(command.node, command.value)], what)

    async def _call(
        self,
        link: _Link,
        method: ua.NodeId,
        obj: ua.NodeId,
        arguments: list[ua.Variant],
        what: str,
    ) -> None:
        request = ua.CallMethodRequest(ObjectId=obj, MethodId=method, InputArguments=arguments)
        results = await self._guarded(link.client.uaclient.call([request]), what)
        result = results[0]
        if not result.StatusCode.is_good():
            raise error_for_status(result.StatusCode.value, what)
        return_status = decode_return_status(result.OutputArguments, what)
        if return_status not in (None, 0):
            raise DeviceRejected(f"{what}: refused, return status {return_status}")

    async def _write(
        self, link: _Link, writes: list[tuple[ua.NodeId, ua.Variant]], what: str
    ) -> None:
        params = ua.WriteParameters(
            NodesToWrite=[
                ua.WriteValue(
                    NodeId=nodeid, AttributeId=AttributeIds.Value, Value=ua.DataValue(value)
                )
                for nodeid, value in writes
            ]
        )
        results = await self._guarded(link.client.uaclient.write(params), what)
        for (nodeid, _), result in zip(writes, results, strict=True):
            if not result.is_good():
                raise error_for_status(result.value, f"{what}: write of {nodeid.to_string()}")

    async def _read(
        self, client: Client, nodes: list[ua.NodeId], attribute: AttributeIds, what: str
    ) -> list[ua.DataValue]:
        params = ua.ReadParameters(
            NodesToRead=[ua.ReadValueId(NodeId=nodeid, AttributeId=attribute) for nodeid in nodes]
        )
        values: list[ua.DataValue] = await self._guarded(client.uaclient.read(params), what)
        return values

    # -- errors and cleanup ----------------------------------------------------------------

    async def _guarded(self, request: Awaitable[_T], what: str) -> _T:
        """Await one exchange with the machine under the timeout, as a driver error."""
        try:
            # asyncua waits for each answer with asyncio.wait_for (see keep_cancellation).
            async with keep_cancellation(), asyncio.timeout(self._config.timeout_s):
                return await request
        except TimeoutError:
            raise DeviceUnavailable(
                f"{what}: no answer within {self._config.timeout_s} s"
            ) from None
        except UaStatusCodeError as exc:
            raise error_for_status(exc.code, what) from exc
        except OSError as exc:  # ConnectionError included: the socket is gone
            raise DeviceUnavailable(f"{what}: {exc!r}") from exc
        except UaError as exc:
            # asyncua's own checks: no endpoint with our policy, certificate mismatch …
            raise DeviceRejected(f"{what}: {exc}") from exc

    def _require_link(self) -> _Link:
        if self._link is None:
            raise DeviceUnavailable(f"{self._name}: not connected")
        return self._link

    def _note(self, error: BaseException) -> None:
        """Keep the last failure for diagnostics (cancellation is not one)."""
        if isinstance(error, Exception):
            self._last_error = f"{type(error).__name__}: {error}"

    def _security_label(self) -> str:
        cfg = self._config
        if cfg.security_policy == "None":
            return "None"
        return f"{cfg.security_policy}/{cfg.security_mode}"

    async def _shutdown(self, client: Client) -> None:
        """Close a client's session, or at least its tasks and socket when the link is dead."""
        timeout_s = self._config.timeout_s
        if client.state is UaClientState.CONNECTED:
            try:
                async with asyncio.timeout(timeout_s):
                    await client.disconnect()
                return
            except (TimeoutError, OSError, UaError) as exc:
                _log.debug("%s: orderly disconnect failed: %r", self._name, exc)
        try:
            # Cancels the client's watchdog, supervisor and renew tasks; the CloseSession
            # request itself fails fast on a dead link.
            async with asyncio.timeout(timeout_s):
                await client.close_session()
        except (TimeoutError, OSError, UaError) as exc:
            _log.debug("%s: close_session on a dead link: %r", self._name, exc)
        client.disconnect_socket()


# -- helpers -------------------------------------------------------------------------------


def _warn_unused(name: str, params: Mapping[str, str], used: Sequence[str]) -> None:
    if unused := sorted(set(params) - set(used)):
        # Parameters of other machines of the operation; not an error.
        _log.debug("%s: parameters not sent to the machine: %s", name, ", ".join(unused))
