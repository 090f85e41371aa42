"""A simulated PackML machine behind a real asyncua Server, with the node map of its config.

The machine runs IDLE → STARTING → EXECUTE (``cycle_s``) → COMPLETING → COMPLETE (one part
counted, ``completed_job_id`` set) → RESETTING → IDLE after ``complete_hold_s`` or on the
Reset command. A ``fault`` holds it (HOLDING → HELD with the reason) and pauses the job;
``clear_fault`` or the Reset command resumes where it was. A job is refused unless the
machine is IDLE (a Bad status), and while it is in local mode (return status
``LOCAL_MODE_REFUSAL``).

The machine's sequence is the PLC and the server only its window: ``stop`` takes the
server down (same port on the next ``start``) while a job runs on, so a test can restart
the server mid-job. Link faults apply to the job and reset commands: ``delay_s`` before
the reply, ``drop`` (no reply until the next ``disconnect``/``stop``), ``garble`` (a
String where the Int32 return status belongs, or BadDecodingError on a start write).
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asyncua import ua
from asyncua.common.callback import CallbackService, CallbackType, ServerItemCallback
from asyncua.common.node import Node
from asyncua.crypto import cert_gen
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.opcua_machine.config import Command, MethodJob, OpcUaMachineConfig, WritesJob
from drivers.opcua_machine.nodes import BrowsePath, ExplicitNodeId, NodeRef, parse_node_ref
from drivers.opcua_machine.packml import PackMLState
from simulators.faults import Faults

__all__ = ["LOCAL_MODE_REFUSAL", "SimulatedMachine", "write_test_certificate"]

_log = logging.getLogger(__name__)

# Return status of the job method while the machine is in local mode (ISA-95 job control
# methods return a non-zero status for "not accepted").
LOCAL_MODE_REFUSAL = 2
# How long the acting states (STARTING, COMPLETING, RESETTING …) last.
_TRANSITION_S = 0.05
# The parent object of nodes given by explicit node id.
_EXPLICIT_PARENT = "ExplicitNodes"
_CALL_ACCEPTED = 0


# What the server calls for a method: the object's node id and the input arguments.
_MethodCallback = Callable[..., Awaitable[list[ua.Variant] | ua.StatusCode]]


class _Reply(enum.Enum):
    NORMAL = "normal"
    GARBLED = "garbled"
    DROPPED = "dropped"


def write_test_certificate(
    certificate: Path, private_key: Path, application_uri: str, hostname: str = "localhost"
) -> None:
    """Write a self-signed application instance certificate (DER) and its key (PEM), as
    OPC 10000-6 §6.2.2 wants them: the application URI and host name in subjectAltName."""
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        application_uri,
        {},
        [x509.UniformResourceIdentifier(application_uri), x509.DNSName(hostname)],
        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
        days=30,
    )
    certificate.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    private_key.write_bytes(cert_gen.dump_private_key_as_pem(key))


def _default_shelf() -> Path:
    # The standard address space, cached by asyncua for fast server starts; one per asyncua
    # and Python version because the shelf holds pickles of asyncua's node classes.
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    name = f"linegate-asyncua-{version('asyncua')}-{python}.shelf"
    return Path(tempfile.gettempdir()) / name


async def _init_address_space(server: Server, shelf: Path | None) -> None:
    """``server.init`` with asyncua's shelf cache made to work on a dbm.dumb Python.

    asyncua loads the shelf only when a file of exactly its name (or ``.db``) exists, but
    dbm.dumb writes NAME.dat/.dir/.bak, so it would rebuild it on every start (~2 s instead
    of ~0.1 s; dependency-probe §4). The shelf is built under a name of our own and moved
    into place, and the empty marker file is created last, so a server starting meanwhile
    never loads half a shelf. One builder at a time (a lock file): simulators started
    together would otherwise build it in parallel threads, and dbm's lazy import of its
    backends is not thread-safe.
    """
    if shelf is None:
        await server.init()
        return
    if await asyncio.to_thread(shelf.is_file):
        await server.init(shelf)
        return
    lock = await asyncio.to_thread(_open_lock, shelf)
    try:
        # Polled, not awaited in a thread: a cancelled start must not leave a thread
        # that takes the lock later and never gives it back.
        while not _try_lock(lock):  # noqa: ASYNC110 (a lock file has no event to await)
            await asyncio.sleep(0.05)
        if await asyncio.to_thread(shelf.is_file):  # built while we waited
            await server.init(shelf)
            return
        building = shelf.with_name(f"{shelf.name}.{os.getpid()}.{id(server)}")
        await server.init(building)
        await asyncio.to_thread(_install_shelf, building, shelf)
    finally:
        os.close(lock)  # releases the lock


def _open_lock(shelf: Path) -> int:
    return os.open(f"{shelf}.lock", os.O_CREAT | os.O_RDWR, 0o644)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _install_shelf(building: Path, shelf: Path) -> None:
    for suffix in (".dat", ".dir"):
        Path(f"{building}{suffix}").replace(f"{shelf}{suffix}")
    Path(f"{building}.bak").unlink(missing_ok=True)
    shelf.touch()


def _bad(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def _variant_type(value: bool | int | str) -> ua.VariantType:
    if isinstance(value, bool):
        return ua.VariantType.Boolean
    if isinstance(value, int):
        return ua.VariantType.Int32
    return ua.VariantType.String


def _pem_or_der(content: bytes) -> str:
    return "pem" if b"-----BEGIN" in content else "der"


def _off_value(value: bool | int | str) -> bool | int | str:
    """What a start/reset tag holds when no command is pending."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0
    return ""


class SimulatedMachine:
    """A PackML machine with an OPC UA server at its config's url (port 0: any free port,
    kept across restarts)."""

    def __init__(
        self,
        name: str,
        config: OpcUaMachineConfig,
        *,
        cycle_s: float = 1.0,
        faults: Faults | None = None,
        certificate: Path | None = None,
        private_key: Path | None = None,
        complete_hold_s: float = 0.5,
        shelf_file: Path | None = None,
    ) -> None:
        if config.security_policy != "None" and (certificate is None or private_key is None):
            raise ValueError(
                f"{name}: a {config.security_policy} server needs a certificate and private_key"
            )
        self._name = name
        self._config = config
        self.faults = faults if faults is not None else Faults()
        self.cycle_s = cycle_s
        self.complete_hold_s = complete_hold_s
        self._certificate = certificate
        self._private_key = private_key
        self._shelf = shelf_file if shelf_file is not None else _default_shelf()
        parts = urlsplit(config.url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 0
        self._path = parts.path or "/"
        self._codes: dict[str, int | str] = dict(config.states.items())
        # The machine (kept across server restarts, like a PLC's retained data).
        self._state = PackMLState.IDLE
        self._state_before_hold = PackMLState.IDLE
        self._good = 0
        self._bad = 0
        self._reason = ""
        self._job_id = ""
        self._completed_job_id = ""
        self._next_part_bad = False
        self.local_mode = False
        self.jobs: list[tuple[str, dict[str, str]]] = []  # every job accepted, in order
        self._job_task: asyncio.Task[None] | None = None
        self._holding = asyncio.Event()  # set while held: interrupts the running phase
        self._not_held = asyncio.Event()  # set while not held: lets the job go on
        self._not_held.set()
        self._state_changed = asyncio.Condition()
        # The server (one per start).
        self._server: Server | None = None
        self._namespace = 0
        self._objects: dict[tuple[str, ...], Node] = {}
        self._ref_nodes: dict[str, Node] = {}
        self._tag_nodes: dict[str, ua.NodeId] = {}
        self._written: dict[str, object] = {}
        self._start_node: ua.NodeId | None = None
        self._reset_node: ua.NodeId | None = None
        self._dropped: list[asyncio.Future[None]] = []
        self.calls_dropped = 0

    # -- SimulatedDevice -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def port(self) -> int:
        """The listening port (the real one once started with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        return f"opc.tcp://{self._host}:{self._port}{self._path}"

    @property
    def state(self) -> PackMLState:
        return self._state

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Start the server; the machine's state is what it was when the server stopped."""
        if self._server is not None:
            return
        # asyncua's server logs every request and session at INFO.
        logging.getLogger("asyncua.server").setLevel(logging.WARNING)
        server = Server()
        await _init_address_space(server, self._shelf)
        server.set_server_name(f"linegate simulated machine {self._name}")
        server.set_endpoint(self.url)
        await self._setup_security(server)
        namespace = await server.register_namespace(self._config.namespace_uri)
        await self._build_nodes(server, namespace)
        server.subscribe_server_callback(CallbackType.PostWrite, self._after_write)
        await server.start()
        if server.bserver is not None:
            self._port = server.bserver.port
        self._server = server
        self._written.clear()
        await self._publish()
        _log.info("%s: OPC UA server at %s", self._name, self.url)

    async def stop(self) -> None:
        """Take the server down (the job, if any, runs on); safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._release_dropped()
        # The server's clock task sleeps 1 s between ticks and stop() waits for it.
        clock, server.iserver.time_task = server.iserver.time_task, None
        if clock is not None:
            clock.cancel()
            await asyncio.wait([clock])
        await server.stop()

    async def close(self) -> None:
        """Stop the server and the machine's own sequence (end of a test or a simulation)."""
        task, self._job_task = self._job_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        await self.stop()

    async def disconnect(self) -> None:
        """Drop every client connection; the server keeps listening."""
        self._release_dropped()
        if self._server is not None:
            for transport in list(self._server.iserver.asyncio_transports):
                transport.close()

    def status(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "url": self.url,
            "running": self.running,
            "state": self._state.value,
            "good": self._good,
            "bad": self._bad,
            "fault": self._reason or None,
            "job_id": self._job_id or None,
            "completed_job_id": self._completed_job_id or None,
            "jobs": len(self.jobs),
            "local_mode": self.local_mode,
            "calls_dropped": self.calls_dropped,
            "faults": self.faults.as_dict(),
        }

    # -- device faults ---------------------------------------------------------------------

    async def fault(self, reason: str) -> None:
        """A machine fault: HOLDING → HELD with ``reason``; a running job pauses."""
        self._reason = reason
        if self._state not in (PackMLState.HELD, PackMLState.HOLDING):
            self._state_before_hold = self._state
            self._holding.set()
            self._not_held.clear()
            await self._set_state(PackMLState.HOLDING)
            await self._set_state(PackMLState.HELD)
        else:
            await self._publish()

    async def clear_fault(self) -> None:
        """Clear the fault: UNHOLDING → back where it was (IDLE when no job was running)."""
        if self._state != PackMLState.HELD:
            return
        self._reason = ""
        job_alive = self._job_task is not None and not self._job_task.done()
        await self._set_state(PackMLState.UNHOLDING)
        await self._set_state(self._state_before_hold if job_alive else PackMLState.IDLE)
        self._holding.clear()
        self._not_held.set()

    async def wait_for_state(self, state: PackMLState) -> None:
        """Return once the machine is in ``state`` (a simulated operator waits like this)."""
        async with self._state_changed:
            await self._state_changed.wait_for(lambda: self._state == state)

    def mark_next_part_bad(self) -> None:
        """The next job completed counts its part as bad (scrap) instead of good."""
        self._next_part_bad = True

    # -- the machine -----------------------------------------------------------------------

    def _accept_job(self, job_id: str, params: dict[str, str]) -> ua.StatusCode | int:
        """Start a job, or say why not: a Bad status, or a non-zero return status."""
        if self.local_mode:
            return LOCAL_MODE_REFUSAL
        if self._state != PackMLState.IDLE:
            return _bad(StatusCodes.BadInvalidState)
        if not job_id:
            return _bad(StatusCodes.BadInvalidArgument)
        self.jobs.append((job_id, params))
        self._job_id = job_id
        self._job_task = asyncio.create_task(self._run_job(job_id), name=f"{self._name} job")
        return _CALL_ACCEPTED

    async def _run_job(self, job_id: str) -> None:
        await self._set_state(PackMLState.STARTING)
        await self._dwell(_TRANSITION_S)
        await self._set_state(PackMLState.EXECUTE)
        await self._dwell(self.cycle_s)
        await self._set_state(PackMLState.COMPLETING)
        await self._dwell(_TRANSITION_S)
        if self._next_part_bad:
            self._next_part_bad = False
            self._bad += 1
        else:
            self._good += 1
        self._completed_job_id = job_id
        await self._set_state(PackMLState.COMPLETE)
        # Some machines wait in COMPLETE for a Reset; this one resets itself after a while.
        await self._dwell(self.complete_hold_s)
        await self._resetting()

    async def _dwell(self, duration_s: float) -> None:
        """Stay in the current state for ``duration_s`` of running time (held time does
        not count)."""
        loop = asyncio.get_running_loop()
        remaining = duration_s
        while remaining > 0:
            await self._not_held.wait()
            started = loop.time()
            try:
                async with asyncio.timeout(remaining):
                    await self._holding.wait()
            except TimeoutError:
                return
            remaining -= loop.time() - started

    async def _reset(self) -> ua.StatusCode | int:
        """The Reset command: clears a fault (the job resumes), or ends COMPLETE early."""
        if self._state == PackMLState.HELD:
            await self.clear_fault()
            return _CALL_ACCEPTED
        if self._state == PackMLState.COMPLETE:
            task = self._job_task
            if task is not None and not task.done():
                task.cancel()  # it only waits out the COMPLETE hold
                await asyncio.wait([task])
            self._job_task = asyncio.create_task(self._resetting(), name=f"{self._name} reset")
            return _CALL_ACCEPTED
        if self._state == PackMLState.IDLE:
            return _CALL_ACCEPTED
        return _bad(StatusCodes.BadInvalidState)

    async def _resetting(self) -> None:
        await self._set_state(PackMLState.RESETTING)
        await self._dwell(_TRANSITION_S)
        await self._set_state(PackMLState.IDLE)

    async def _set_state(self, state: PackMLState) -> None:
        self._state = state
        async with self._state_changed:
            self._state_changed.notify_all()
        await self._publish()

    async def _publish(self) -> None:
        """Write what changed to the server's nodes (nothing while the server is down)."""
        server = self._server
        if server is None:
            return
        values: dict[str, tuple[object, ua.VariantType]] = {
            "good_count": (self._good, ua.VariantType.Int32),
            "bad_count": (self._bad, ua.VariantType.Int32),
            "stop_reason": (self._reason, ua.VariantType.String),
            "job_id": (self._job_id, ua.VariantType.String),
            "completed_job_id": (self._completed_job_id, ua.VariantType.String),
        }
        # A state the machine's map lacks is not shown: the tag keeps the last mapped one.
        if (code := self._codes.get(self._state.value)) is not None:
            values["state"] = (code, _variant_type(code))
        for tag, (value, variant_type) in values.items():
            node = self._tag_nodes.get(tag)
            if node is None or self._written.get(tag) == value:
                continue
            self._written[tag] = value
            await server.write_attribute_value(node, ua.DataValue(ua.Variant(value, variant_type)))

    # -- the server's side of the exchanges ------------------------------------------------

    async def _link_faults(self) -> _Reply:
        """Apply the link faults to one exchange: how (and whether) it is answered."""
        await self.faults.delay()
        if self.faults.should_drop():
            self.calls_dropped += 1
            dropped = asyncio.get_running_loop().create_future()
            self._dropped.append(dropped)
            await dropped
            # The request was lost on the way: nothing happened on the machine.
            return _Reply.DROPPED
        return _Reply.GARBLED if self.faults.should_garble() else _Reply.NORMAL

    def _release_dropped(self) -> None:
        # Dropped calls wait in the server's request loop; a closed connection ends them.
        for dropped in self._dropped:
            if not dropped.done():
                dropped.set_result(None)
        self._dropped.clear()

    async def _on_job_method(
        self, parent: ua.NodeId, *arguments: ua.Variant
    ) -> list[ua.Variant] | ua.StatusCode:
        reply = await self._link_faults()
        if reply is not _Reply.NORMAL:
            return self._faulty_reply(reply)
        job = self._config.job
        assert isinstance(job, MethodJob)
        values = [str(argument.Value) for argument in arguments]
        job_id = values[0] if values else ""
        params = dict(zip(job.arguments, values[1:], strict=False))
        return self._method_reply(self._accept_job(job_id, params))

    async def _on_reset_method(
        self, parent: ua.NodeId, *arguments: ua.Variant
    ) -> list[ua.Variant] | ua.StatusCode:
        reply = await self._link_faults()
        if reply is not _Reply.NORMAL:
            return self._faulty_reply(reply)
        return self._method_reply(await self._reset())

    @staticmethod
    def _faulty_reply(reply: _Reply) -> list[ua.Variant] | ua.StatusCode:
        if reply is _Reply.DROPPED:
            return _bad(StatusCodes.BadRequestCancelledByClient)  # nobody reads it
        # A String where the Int32 return status belongs.
        return [ua.Variant("\ufffdgarbled", ua.VariantType.String)]

    @staticmethod
    def _method_reply(result: ua.StatusCode | int) -> list[ua.Variant] | ua.StatusCode:
        if isinstance(result, ua.StatusCode):
            return result
        return [ua.Variant(result, ua.VariantType.Int32)]

    async def _on_start_method(
        self, parent: ua.NodeId, *arguments: ua.Variant
    ) -> list[ua.Variant] | ua.StatusCode:
        reply = await self._link_faults()
        if reply is not _Reply.NORMAL:
            return self._faulty_reply(reply)
        return self._method_reply(self._accept_job(*self._written_job()))

    def _written_job(self) -> tuple[str, dict[str, str]]:
        """The job id and parameters a client wrote (mode "writes")."""
        job = self._config.job
        assert isinstance(job, WritesJob) and self._server is not None
        server = self._server

        def text(ref: str) -> str:
            value = server.read_attribute_value(self._ref_nodes[ref].nodeid).Value
            return str(value.Value) if value is not None and value.Value is not None else ""

        return text(job.job_id), {name: text(ref) for name, ref in job.parameters.items()}

    async def _after_write(self, event: ServerItemCallback, _: CallbackService) -> None:
        """Writes to the start/reset tags are commands; their status is the reply."""
        if not event.is_external:
            return
        request: ua.WriteParameters = event.request_params
        results: list[ua.StatusCode] = event.response_params
        for index, write in enumerate(request.NodesToWrite):
            if not results[index].is_good() or write.Value.Value is None:
                continue
            value = write.Value.Value.Value
            start = self._config.job.start if isinstance(self._config.job, WritesJob) else None
            if write.NodeId == self._start_node and start is not None and value == start.value:
                results[index] = await self._command_write(start, self._start_write)
            elif (
                write.NodeId == self._reset_node
                and self._config.reset is not None
                and value == self._config.reset.value
            ):
                results[index] = await self._command_write(self._config.reset, self._reset)

    async def _start_write(self) -> ua.StatusCode | int:
        return self._accept_job(*self._written_job())

    async def _command_write(
        self, command: Command, action: Callable[[], Awaitable[ua.StatusCode | int]]
    ) -> ua.StatusCode:
        reply = await self._link_faults()
        # A PLC clears its command tag once it has taken the command (or refused it).
        server = self._server
        assert command.node is not None and server is not None
        off = _off_value(command.value)
        await server.write_attribute_value(
            self._ref_nodes[command.node].nodeid,
            ua.DataValue(ua.Variant(off, _variant_type(off))),
        )
        if reply is _Reply.DROPPED:
            return _bad(StatusCodes.BadRequestCancelledByClient)
        if reply is _Reply.GARBLED:
            return _bad(StatusCodes.BadDecodingError)
        result = await action()
        if isinstance(result, ua.StatusCode):
            return result
        return (
            ua.StatusCode() if result == _CALL_ACCEPTED else _bad(StatusCodes.BadUserAccessDenied)
        )

    # -- building the address space ----------------------------------------------------------

    async def _setup_security(self, server: Server) -> None:
        if self._config.security_policy == "None":
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            # User names and user certificates would travel in clear: anonymous only.
            server.set_identity_tokens([ua.AnonymousIdentityToken])
            await server.set_application_uri(f"urn:linegate:simulator:{self._name}")
            return
        assert self._certificate is not None and self._private_key is not None
        # asyncua tells PEM from DER by the file name; the content says it reliably.
        certificate_file = await asyncio.to_thread(self._certificate.read_bytes)
        await server.load_certificate(certificate_file, _pem_or_der(certificate_file))
        key_file = await asyncio.to_thread(self._private_key.read_bytes)
        await server.load_private_key(key_file, None, _pem_or_der(key_file))
        certificate = server.iserver.certificate
        uris: Sequence[str] = []
        if certificate is not None:
            names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
        await server.set_application_uri(uris[0] if uris else f"urn:linegate:sim:{self._name}")
        server.set_security_policy(
            [
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ]
        )

    async def _build_nodes(self, server: Server, namespace: int) -> None:
        cfg = self._config
        self._objects = {(): server.nodes.objects}
        self._ref_nodes = {}
        self._tag_nodes = {}
        self._namespace = namespace
        state_type = _variant_type(next(iter(self._codes.values())))
        tags: dict[str, tuple[str | None, ua.VariantType, object]] = {
            "state": (
                cfg.nodes.state,
                state_type,
                "" if state_type == ua.VariantType.String else 0,
            ),
            "good_count": (cfg.nodes.good_count, ua.VariantType.Int32, 0),
            "bad_count": (cfg.nodes.bad_count, ua.VariantType.Int32, 0),
            "stop_reason": (cfg.nodes.stop_reason, ua.VariantType.String, ""),
            "job_id": (cfg.nodes.job_id, ua.VariantType.String, ""),
            "completed_job_id": (cfg.nodes.completed_job_id, ua.VariantType.String, ""),
        }
        for tag, (ref, variant_type, initial) in tags.items():
            if ref is not None:
                self._tag_nodes[tag] = await self._variable(ref, initial, variant_type)

        job = cfg.job
        if isinstance(job, MethodJob):
            inputs = [ua.VariantType.String] * (1 + len(job.arguments))
            await self._method(job.method, job.object, self._on_job_method, inputs)
        else:
            await self._variable(job.job_id, "", ua.VariantType.String, writable=True)
            for ref in job.parameters.values():
                await self._variable(ref, "", ua.VariantType.String, writable=True)
            self._start_node = await self._command(job.start, self._on_start_method)
        if cfg.reset is not None:
            self._reset_node = await self._command(cfg.reset, self._on_reset_method)

    async def _command(self, command: Command, on_call: _MethodCallback) -> ua.NodeId | None:
        if command.method is not None:
            await self._method(command.method, command.object, on_call, [])
            return None
        assert command.node is not None
        off = _off_value(command.value)
        return await self._variable(command.node, off, _variant_type(off), writable=True)

    def _node_id(self, ref: ExplicitNodeId) -> ua.NodeId:
        if ref.namespace_uri not in (None, self._config.namespace_uri) or (
            ref.namespace_uri is None and ref.namespace_index != self._namespace
        ):
            raise ValueError(f"{ref}: the simulator serves nodes of namespace_uri only")
        return ua.NodeId.from_string(f"ns={self._namespace};{ref.identifier}")

    def _new_node_id(self, ref: NodeRef) -> ua.NodeId:
        if isinstance(ref, BrowsePath):
            return ua.NodeId(ua.Int32(0), ua.Int16(self._namespace))  # 0: the server picks one
        return self._node_id(ref)

    def _browse_name(self, ref: NodeRef) -> ua.QualifiedName:
        if isinstance(ref, BrowsePath):
            return ua.QualifiedName(ref.segments[-1], self._namespace)
        return ua.QualifiedName(ref.identifier.partition("=")[2], self._namespace)

    async def _object(self, segments: tuple[str, ...]) -> Node:
        """The object at a browse path, created with its parents when missing."""
        if (found := self._objects.get(segments)) is not None:
            return found
        parent = await self._object(segments[:-1])
        created = await parent.add_object(self._namespace, segments[-1])
        self._objects[segments] = created
        return created

    async def _explicit_object(self, ref: ExplicitNodeId) -> Node:
        key = (str(ref),)  # not a browse path: no "/" is needed to tell them apart
        if (found := self._objects.get(key)) is not None:
            return found
        root = self._objects[()]
        created = await root.add_object(self._node_id(ref), self._browse_name(ref))
        self._objects[key] = created
        return created

    async def _parent_of(self, ref: NodeRef) -> Node:
        if isinstance(ref, BrowsePath):
            return await self._object(ref.segments[:-1])
        return await self._object((_EXPLICIT_PARENT,))

    async def _variable(
        self, text: str, initial: object, variant_type: ua.VariantType, writable: bool = False
    ) -> ua.NodeId:
        if (known := self._ref_nodes.get(text)) is not None:
            if writable:  # a tag both monitored and written (the job id of a "writes" job)
                await known.set_writable()
            return known.nodeid
        ref = parse_node_ref(text)
        parent = await self._parent_of(ref)
        nodeid = self._new_node_id(ref)
        node = await parent.add_variable(nodeid, self._browse_name(ref), initial, variant_type)
        if writable:
            await node.set_writable()
        self._ref_nodes[text] = node
        return node.nodeid

    async def _method(
        self,
        method_text: str,
        object_text: str | None,
        on_call: _MethodCallback,
        inputs: list[ua.VariantType],
    ) -> None:
        method = parse_node_ref(method_text)
        if object_text is not None:
            owner_ref = parse_node_ref(object_text)
            if isinstance(owner_ref, BrowsePath):
                owner = await self._object(owner_ref.segments)
            else:
                owner = await self._explicit_object(owner_ref)
        else:
            assert isinstance(method, BrowsePath)
            owner = await self._object(method.segments[:-1])
        nodeid = self._new_node_id(method)
        node = await owner.add_method(
            nodeid, self._browse_name(method), on_call, inputs, [ua.VariantType.Int32]
        )
        self._ref_nodes[method_text] = node
