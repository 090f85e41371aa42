"""Simulated operators: people working the station API as they would at the station screen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from simulators.orders import JsonDict

log = logging.getLogger(__name__)

# A task that makes no progress for this many steps in a row is left for a later cycle.
_STUCK_STEPS = 8
# Upper bound on the steps of one task in one cycle (a rework loop included).
_MAX_STEPS = 200
# Share of failed checks the operator scraps instead of reworking.
_SCRAP_SHARE = 0.25

_DEFECTS = {
    "print": ("print off-centre", "ink smear on the chest", "colour missing in the artwork"),
    "embroider": ("thread break", "text stitched crooked", "wrong thread colour"),
    "inspect": ("engraving does not match the order text", "burn mark", "text cut off"),
    "assemble": ("seal broken", "component missing", "gift box dented"),
}
_GENERIC_DEFECTS = ("damaged in handling", "does not match the e-SOP")


class Hands(Protocol):
    """What an operator does to the station's devices, when it has them: a scan on the
    scanner, a parcel on the scale. Without them the operator uses the station API."""

    def has_scanner(self, station: str) -> bool: ...

    def has_scale(self, station: str) -> bool: ...

    def has_machine(self, station: str) -> bool: ...

    async def scan(self, station: str, code: str) -> bool: ...

    async def place(self, station: str, grams: float) -> None: ...

    async def lift(self, station: str) -> None: ...


# How long a device's effect may take to show on the station screen (real seconds).
_DEVICE_ANSWER_S = 10.0
# How long a person takes to lift a parcel off the scale and put it back.
_LIFT_S = 0.5


@dataclass(frozen=True, slots=True)
class OpTime:
    """Standard time of an operation, from the catalog."""

    run_s: float
    setup_s: float = 0.0
    setup_key: str | None = None


def standard_times(catalog: Mapping[str, Any]) -> dict[str, OpTime]:
    """Per operation name, the longest standard time any routing gives it."""
    out: dict[str, OpTime] = {}
    for routing in catalog["routings"]:
        for op in routing["operations"]:
            t = OpTime(float(op["run_s"]), float(op.get("setup_s", 0)), op.get("setup_key"))
            if op["op"] not in out or t.run_s > out[op["op"]].run_s:
                out[op["op"]] = t
    return out


def station_loads(
    catalog: Mapping[str, Any],
    capabilities: Mapping[str, Sequence[str]],
    units_per_sku: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Standard seconds of work per station for ``units_per_sku`` (one of each SKU by
    default), shared equally among the stations of a capability."""
    routings = {r["routing"]: r for r in catalog["routings"]}
    demand: dict[str, float] = {}
    for sku in catalog["skus"]:
        units = 1.0 if units_per_sku is None else float(units_per_sku.get(sku["sku"], 0.0))
        for op in routings[sku["routing"]]["operations"]:
            cap = op["capability"]
            demand[cap] = demand.get(cap, 0.0) + units * float(op["run_s"])
    sharing = Counter(c for caps in capabilities.values() for c in caps)
    return {
        station: sum(demand.get(c, 0.0) / sharing[c] for c in caps)
        for station, caps in capabilities.items()
    }


def assign_staff(
    allowed: Mapping[str, Sequence[str] | None],
    badges: Sequence[str],
    loads: Mapping[str, float],
) -> dict[str, str]:
    """A badge per station: ``allowed[station]`` None means anyone of ``badges``.

    Stations only few may work come first; among the rest the busiest are staffed first.
    With fewer people than stations, a station left over shares the person of the least
    busy station whose badge it accepts (an inspector who also packs, say).
    """

    def may(badge: str, station: str) -> bool:
        names = allowed[station]
        return names is None or badge in names

    order = sorted(
        allowed,
        key=lambda s: (len(allowed[s] or badges), -loads.get(s, 0.0), s),
    )
    free = list(badges)
    staff: dict[str, str] = {}
    for station in order:
        candidates = [b for b in free if may(b, station)]
        if not candidates:
            continue
        # Keep the people only some stations accept for those stations.
        badge = min(
            candidates,
            key=lambda b: (
                sum(1 for t in order if t not in staff and t != station and may(b, t)),
                badges.index(b),
            ),
        )
        staff[station] = badge
        free.remove(badge)
    alone = dict(staff)
    for station in order:
        if station in staff:
            continue
        partners = [t for t in alone if may(alone[t], station)]
        if partners:
            partner = min(partners, key=lambda t: (loads.get(t, 0.0), t))
            staff[station] = alone[partner]
    return staff


@dataclass(eq=False)
class Person:
    """One operator; a person staffing two stations works at one of them at a time."""

    badge: str
    name: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    at: str | None = None  # the station they are logged in at, as far as they know


@dataclass
class OperatorCounters:
    """What one simulated operator did."""

    actions: int = 0  # POSTs to the station API
    views: int = 0  # GETs of the station screen
    refusals: int = 0  # 409 answers
    expected_refusals: int = 0  # refusals of mistakes made on purpose
    mistakes: Counter[str] = field(default_factory=Counter)
    accepted_mistakes: int = 0  # mistakes the gateway let through (it should not)
    tasks_done: int = 0
    reworked: int = 0
    scrapped: int = 0
    errors: int = 0  # transport failures and unexpected answers, survived
    device_timeouts: int = 0  # a scan or weighing that showed no effect (dropped), redone

    @property
    def unexpected_refusals(self) -> int:
        return self.refusals - self.expected_refusals


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer of the station API."""

    status: int
    ok: bool
    code: str | None
    message: str
    next: str
    data: JsonDict

    @property
    def refused(self) -> bool:
        return self.status >= 400


class SimulatedOperator:
    """Works one station through the station API until stopped.

    Takes the head of the queue, follows the screen (traveller, materials, start, the
    standard time, the checklist, complete; at packing: units, materials, weight, label)
    and makes mistakes at ``error_rate``: a wrong material or an unknown lot (refused, then
    done right), a failed check (the task is failed: rework, sometimes scrap), a wrong
    parcel weight (weighed again). Every refusal is survived by reading the screen again.
    """

    def __init__(
        self,
        base_url: str,
        station: str,
        person: Person,
        *,
        catalog: Mapping[str, Any],
        speed: float = 1.0,
        error_rate: float = 0.0,
        seed: int = 0,
        idle_poll_s: float = 0.2,
        client: httpx.AsyncClient | None = None,
        auth: httpx.Auth | None = None,
        hands: Hands | None = None,
        machine_wait_s: float = 60.0,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.station = station
        self.person = person
        self.counters = OperatorCounters()
        self._base = base_url.rstrip("/")
        self._path = f"/api/stations/{station}"
        self._speed = speed
        self._error_rate = error_rate
        self._rng = random.Random(f"{seed}/{station}")
        self._idle_poll_s = idle_poll_s
        self._client = client
        # The station's terminal credential (simulators/keys.py): a client of our own
        # uses it; a shared ``client`` brings its own.
        self._auth = auth
        self._hands = hands
        self._machine_wait_s = machine_wait_s
        self._times: dict[str, OpTime] = {}
        self._materials: list[str] = []
        self._weights: dict[str, tuple[float, float]] = {}
        self.use_catalog(catalog)
        self._stopping = asyncio.Event()
        self._worked: set[tuple[int, int]] = set()  # (task, attempt) whose work time is spent
        self._weighed: set[tuple[int, int]] = set()
        self._setup: dict[str, object] = {}  # op -> the setup the machine has now
        self._http: httpx.AsyncClient | None = None

    def use_catalog(self, catalog: Mapping[str, Any]) -> None:
        """Work by ``catalog`` from now on (the hub sent a new one): its standard times,
        its materials and its units' weights."""
        times = standard_times(catalog)
        # A container is no wrong material at packing: another one that holds the units is
        # accepted there (contract 1.1 parcels), so the mistakes leave containers out.
        materials = sorted(m["material"] for m in catalog["materials"] if not m.get("container"))
        weights = {
            s["sku"]: (
                float(s.get("unit_weight_g") or 0.0),
                float(s.get("weight_tolerance_g") or 0),
            )
            for s in catalog["skus"]
        }
        self._times, self._materials, self._weights = times, materials, weights

    def stop(self) -> None:
        """Leave after the current action."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        own = self._client is None
        self._http = self._client or httpx.AsyncClient(
            base_url=self._base, timeout=30.0, auth=self._auth
        )
        failures = 0
        try:
            while not self.stopping:
                try:
                    worked = await self._cycle()
                    failures = 0
                except httpx.HTTPError as exc:
                    failures += 1
                    self.counters.errors += 1
                    log.warning("%s: station API unreachable (%s); trying again", self.station, exc)
                    await self._sleep(min(5.0, 0.2 * 2**failures))
                    continue
                except Exception:
                    # A simulated person does not walk off the line: note it and go on.
                    failures += 1
                    self.counters.errors += 1
                    log.exception("%s: unexpected trouble; trying again", self.station)
                    await self._sleep(min(5.0, 0.2 * 2**failures))
                    continue
                if not worked:
                    await self._sleep(self._idle_poll_s * self._rng.uniform(0.7, 1.3))
        finally:
            if own:
                await self._http.aclose()
            self._http = None

    # -- one cycle: take a task and see it through ---------------------------------------

    async def _cycle(self) -> bool:
        if self.person.at is None:
            # The start of the shift: badge in, so the screen shows who works here.
            async with self.person.lock:
                if not self._somewhere() and not self.stopping:
                    await self._login()
        view = await self._view()
        if view.get("task") is None and not view.get("queue"):
            return False
        async with self.person.lock:
            if self.stopping:
                return False
            here = self.person.at == self.station and view.get("operator") == self.person.badge
            if not here and not await self._login():
                return False
            await self._work()
        # A person shared with another station lets that one have a turn.
        await asyncio.sleep(0)
        return True

    def _somewhere(self) -> bool:
        # Read after waiting for the person: the other station may have logged them in.
        return self.person.at is not None

    async def _login(self) -> bool:
        ans = await self._post("login", {"badge": self.person.badge})
        if ans.refused:
            log.error("%s: %s cannot log in: %s", self.station, self.person.badge, ans.message)
            self.counters.errors += 1
            await self._sleep(5.0)
            return False
        self.person.at = self.station
        return True

    async def _work(self) -> None:
        ans = await self._post("next")
        if ans.refused or "task_id" not in ans.data:
            return  # nothing left: another station took it, or we were logged out
        stuck = 0
        for _ in range(_MAX_STEPS):
            if self.stopping:
                return
            view = await self._view()
            task = view.get("task")
            if task is None:
                return
            if task["serial"] is None:
                progressed = await self._pack_step(task)
            else:
                progressed = await self._unit_step(task, str(view.get("next", "")))
            if progressed:
                stuck = 0
                continue
            stuck += 1
            if stuck >= _STUCK_STEPS:
                log.warning(
                    "%s: task %s of order %s makes no progress (%s); left for now",
                    self.station,
                    task["task_id"],
                    task["order_id"],
                    view.get("next"),
                )
                return
            await self._sleep(min(2.0, 0.05 * 2**stuck))

    # -- a unit's operation ------------------------------------------------------------

    async def _unit_step(self, task: JsonDict, next_step: str) -> bool:
        status = task["status"]
        if status == "paused":
            return not (await self._post("resume")).refused
        if status == "dispatched":
            if "traveller" in next_step.lower():
                return not (await self._scan(task["serial"])).refused
            for material in task["materials"]:
                if material["scanned"] is None and not await self._scan_material(task, material):
                    return False
            ans = await self._post("start")
            if ans.refused:
                if ans.code == "CONFIRM_UNIT":
                    return not (await self._scan(task["serial"])).refused
                return False
            if not await self._machine_runs(task):
                await self._spend_work_time(task)
            return True
        if status != "running":
            return False
        if _attempt(task) not in self._worked and not await self._machine_runs(task):
            await self._spend_work_time(task)
        items = task["checklist"]
        if any(item["passed"] is False for item in items):
            return await self._fail(task)
        unanswered = [i for i, item in enumerate(items) if item["passed"] is None]
        if unanswered and self._mistake("failed_check"):
            ans = await self._post(
                "checklist", {"item": self._rng.choice(unanswered), "passed": False}
            )
            return False if ans.refused else await self._fail(task)
        for i in unanswered:
            if (await self._post("checklist", {"item": i, "passed": True})).refused:
                return False
        if task.get("weight_check") and _attempt(task) not in self._weighed:
            expected, tol = self._weights.get(task.get("sku") or "", (0.0, 0.0))
            grams = max(0.0, round(expected + self._rng.uniform(-0.6, 0.6) * tol, 1))
            ans = await self._post("weight", {"grams": grams})
            if ans.refused or not ans.ok:
                return False
            self._weighed.add(_attempt(task))
        ans = await self._post("complete")
        if ans.refused:
            return False
        self.counters.tasks_done += 1
        return True

    async def _fail(self, task: JsonDict) -> bool:
        scrap = self._rng.random() < _SCRAP_SHARE
        reason = self._rng.choice(_DEFECTS.get(task["op"], _GENERIC_DEFECTS))
        ans = await self._post(
            "fail", {"reason": reason, "disposition": "scrap" if scrap else "rework"}
        )
        if ans.refused:
            return False
        if scrap:
            self.counters.scrapped += 1
        else:
            self.counters.reworked += 1
        return True

    # -- packing -------------------------------------------------------------------------

    async def _pack_step(self, task: JsonDict) -> bool:
        if task["status"] == "paused":
            return not (await self._post("resume")).refused
        for unit in task.get("units", []):
            if not unit["scanned"] and (await self._scan(unit["serial"])).refused:
                return False
        for material in task["materials"]:
            if material["scanned"] is None and not await self._scan_material(task, material):
                return False
        if _attempt(task) not in self._worked:
            await self._spend_work_time(task)
        label = task.get("label_id")
        if label is None and self._hands is not None and self._hands.has_scale(self.station):
            label = await self._weigh_on_scale(task)
        if label is None:
            expected = float(task["expected_weight_g"])
            tol = float(task["tolerance_g"])
            if self._mistake("wrong_weight"):
                # A forgotten or an extra item: clearly outside the tolerance.
                off = tol + self._rng.uniform(20.0, 150.0)
                wrong = (
                    expected - off
                    if expected > off and self._rng.random() < 0.5
                    else expected + off
                )
                ans = await self._post("weight", {"grams": round(wrong, 1)})
                if ans.refused:
                    return False
                if ans.ok:
                    self._accepted_mistake("wrong_weight", ans)
                    label = ans.data.get("label_id")
            if label is None:
                grams = round(expected + self._rng.uniform(-0.6, 0.6) * tol, 1)
                ans = await self._post("weight", {"grams": max(0.0, grams)})
                if ans.refused or not ans.ok:
                    return False
                label = ans.data.get("label_id")
        if not isinstance(label, str):
            return False
        if (await self._scan(label)).refused:
            return False
        if self._hands is not None and self._hands.has_scale(self.station):
            await self._hands.lift(self.station)  # the parcel goes to the carrier cage
        self.counters.tasks_done += 1
        return True

    async def _weigh_on_scale(self, task: JsonDict) -> str | None:
        """Put the parcel on the scale and read the outcome off the screen."""
        assert self._hands is not None
        expected = float(task["expected_weight_g"])
        tol = float(task["tolerance_g"])
        grams = expected + self._rng.uniform(-0.5, 0.5) * tol
        wrong = self._mistake("wrong_weight")
        if wrong:
            grams = expected + tol + self._rng.uniform(20.0, 150.0)
        before = await self._device_seq()
        log.debug("%s: parcel of %.1f g on the scale", self.station, grams)
        await self._hands.place(self.station, grams)
        ans = await self._device_answer(before)
        if ans.refused or not ans.ok:
            # Lift it, find the missing or extra item, put it back on the next step.
            await self._hands.lift(self.station)
            await asyncio.sleep(_LIFT_S)
            return None
        if wrong:
            self._accepted_mistake("wrong_weight", ans)
        task_now = (await self._view()).get("task") or {}
        label = task_now.get("label_id")
        return label if isinstance(label, str) else None

    async def _machine_runs(self, task: JsonDict) -> bool:
        """At a station with a machine: wait for the machine to finish the job (it may
        complete the task itself). False when there is no machine, or it never takes the
        job (offline: the operator runs it by hand)."""
        if self._hands is None or not self._hands.has_machine(self.station):
            return False
        self._worked.add(_attempt(task))
        deadline = asyncio.get_running_loop().time() + self._machine_wait_s
        seen_job = False
        while asyncio.get_running_loop().time() < deadline and not self.stopping:
            view = await self._view()
            now = view.get("task")
            if now is None or now.get("task_id") != task["task_id"]:
                return True  # the machine completed the task
            if now.get("machine_done"):
                return True
            seen_job = seen_job or bool(now.get("machine_job"))
            if not seen_job and (view.get("devices") or {}).get("machine") != "ready":
                return False  # offline: work by hand
            await asyncio.sleep(0.05)
        return seen_job

    # -- shared steps ----------------------------------------------------------------------

    async def _scan_material(self, task: JsonDict, material: JsonDict) -> bool:
        if self._rng.random() < self._error_rate:
            await self._wrong_scan(task, material)
        code = material["suggested_lot"] if material["lot_tracked"] else material["material"]
        if not code:
            return False  # no lot is reserved for it (yet): read the screen again
        ans = await self._scan(code)
        return not ans.refused or ans.code == "ALREADY_SCANNED"

    async def _wrong_scan(self, task: JsonDict, material: JsonDict) -> None:
        needed = {m["material"] for m in task["materials"]}
        others = [m for m in self._materials if m not in needed]
        if not others or self._rng.random() < 0.5:
            kind = "unknown_lot"
            code = f"{material['material']}-L{self._rng.randint(2001, 2412)}X"
        else:
            kind = "wrong_material"
            code = self._rng.choice(others)
        self.counters.mistakes[kind] += 1
        ans = await self._scan(code)
        if ans.refused:
            self.counters.expected_refusals += 1
        else:
            self._accepted_mistake(kind, ans)

    def _mistake(self, kind: str) -> bool:
        if self._rng.random() < self._error_rate:
            self.counters.mistakes[kind] += 1
            return True
        return False

    def _accepted_mistake(self, kind: str, ans: Answer) -> None:
        self.counters.accepted_mistakes += 1
        log.warning("%s: a mistake (%s) was accepted: %s", self.station, kind, ans.message)

    async def _spend_work_time(self, task: JsonDict) -> None:
        self._worked.add(_attempt(task))
        t = self._times.get(task["op"], OpTime(30.0))
        seconds = t.run_s
        if task["serial"] is None:
            seconds *= 1.0 + 0.25 * (len(task.get("units", [])) - 1)
        if t.setup_key is not None:
            value = (task.get("params") or {}).get(t.setup_key)
            if self._setup.get(task["op"], _NO_SETUP) != value:
                # The machine is set up for something else: change over first.
                seconds += t.setup_s
                self._setup[task["op"]] = value
        await self._sleep(seconds * self._rng.uniform(0.8, 1.2) / self._speed)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    # -- the station API -----------------------------------------------------------------

    async def _view(self) -> JsonDict:
        assert self._http is not None
        r = await self._http.get(self._path)
        self.counters.views += 1
        r.raise_for_status()
        doc: JsonDict = r.json()
        return doc

    async def _scan(self, code: str) -> Answer:
        if self._hands is None or not self._hands.has_scanner(self.station):
            return await self._post("scan", {"code": code})
        before = await self._device_seq()
        log.debug("%s: scanning %s on the scanner", self.station, code)
        self.counters.actions += 1
        if not await self._hands.scan(self.station, code):
            # The beep did not come (a dropped read, an unplugged scanner): scan again.
            self.counters.device_timeouts += 1
            return Answer(504, False, "NO_READ", "the scanner did not read", "", {})
        return await self._device_answer(before)

    async def _device_seq(self) -> int:
        msg = (await self._view()).get("device_message") or {}
        return int(msg.get("seq") or 0)

    async def _device_answer(self, after_seq: int) -> Answer:
        """What the station screen says about the device's latest doing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DEVICE_ANSWER_S
        while loop.time() < deadline:
            msg = (await self._view()).get("device_message") or {}
            if int(msg.get("seq") or 0) > after_seq:
                refused = msg.get("refused")
                if refused:
                    self.counters.refusals += 1
                    if refused == "NOT_LOGGED_IN":
                        self.person.at = None
                return Answer(
                    status=409 if refused else 200,
                    ok=bool(msg.get("ok")),
                    code=refused,
                    message=str(msg.get("message", "")),
                    next=str(msg.get("next", "")),
                    data=msg,
                )
            await asyncio.sleep(0.02)
        # Nothing came of it (a dropped scan, a scale that never settles): try again.
        self.counters.device_timeouts += 1
        log.info(
            "%s: the device did nothing in %g s; doing it again", self.station, _DEVICE_ANSWER_S
        )
        return Answer(504, False, "NO_ANSWER", "the device did nothing", "", {})

    async def _post(self, action: str, body: JsonDict | None = None) -> Answer:
        assert self._http is not None
        r = await self._http.post(f"{self._path}/{action}", json=body)
        self.counters.actions += 1
        try:
            doc = r.json()
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        ans = Answer(
            status=r.status_code,
            ok=r.status_code < 400 and doc.get("ok", True) is True,
            code=doc.get("code"),
            message=str(doc.get("message", r.reason_phrase)),
            next=str(doc.get("next", "")),
            data=doc,
        )
        if r.status_code == 409:
            self.counters.refusals += 1
            log.debug(
                "%s: %s refused (%s): %s / %s",
                self.station,
                action,
                ans.code,
                ans.message,
                ans.next,
            )
            if ans.code == "NOT_LOGGED_IN":
                self.person.at = None
        elif r.status_code >= 400:
            self.counters.errors += 1
            log.warning(
                "%s: %s answered HTTP %d: %s", self.station, action, r.status_code, ans.message
            )
        return ans


_NO_SETUP = object()


def _attempt(task: JsonDict) -> tuple[int, int]:
    return int(task["task_id"]), int(task.get("attempt") or 1)
