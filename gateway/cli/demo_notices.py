"""What the demo shows of issue 15's work as it happens: the pick requests it sends the
warehouse, the parcel each order went into, and the alarm notifications, which go to a
local receiver speaking the WeCom, DingTalk and Feishu robots' formats and SMTP
(simulators/notify_receiver.py) that prints each message it gets."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gateway.alerts.demo import demo_alarms
from gateway.app.root import Gateway
from gateway.config.line import LineConfig
from gateway.orderbook import parcels_report
from gateway.planning.picks import print_requests
from gateway.store.rows import OrderStatus
from simulators.line import SimulatedLine
from simulators.notify_receiver import DEMO_SECRETS, MailReceiver, NotifyReceiver

__all__ = ["DemoNotices"]


def _say(text: str) -> None:
    print(f"  {text}", flush=True)


def _said(text: object) -> None:
    # The receivers hand over whole lines (with their end) from their own threads.
    print(f"  {str(text).rstrip()}", flush=True)


@dataclass
class DemoNotices:
    """The receivers of the demo's alarm notifications, and what it printed of parcels."""

    robots: NotifyReceiver | None = None
    mail: MailReceiver | None = None
    parcels_seen: str | None = None  # the last completion whose parcel was printed
    parcels: parcels_report.Tally = field(default_factory=parcels_report.Tally)

    @classmethod
    def start(cls, config: LineConfig, data_dir: Path) -> tuple[DemoNotices, LineConfig]:
        """The receivers, started, and ``config`` with the demo's ``[alarms]`` pointed at
        them; a line that brings ``[alarms]`` rules of its own keeps them (and no receiver
        is started)."""
        if config.alarms.rules:
            return cls(), config
        robots = NotifyReceiver(out=_said)
        mail = MailReceiver(out=_said)
        robots.start()
        mail.start()
        alarms = demo_alarms(
            data_dir / "alarm-secrets",
            robots.url,
            mail.port,
            shifts=[s.name for s in config.shifts],
            **asdict(DEMO_SECRETS),
        )
        return cls(robots, mail), config.model_copy(update={"alarms": alarms})

    def follow(self, gateway: Gateway) -> None:
        """Print each pick request as the gateway commits it."""
        print_requests(gateway.core, _say)

    def progress(self, gateway: Gateway) -> None:
        """The parcels packed since the last call: the last one's containers against its
        BOM's, printed; all of them counted."""
        new = parcels_report.packed_since(gateway.core, self.parcels_seen)
        if not new:
            return
        for p in new:
            self.parcels.add(p)
        self.parcels_seen = gateway.store.texts(
            "SELECT max(completed_at) FROM orders WHERE status = ?", (OrderStatus.COMPLETED,)
        )[0]
        _say("parcel " + parcels_report.describe(new[-1]))

    def summary(self, gateway: Gateway) -> list[str]:
        picks = gateway.picks.stats if gateway.picks is not None else None
        lines = [f"  parcels            {self.parcels.text()}"]
        if picks is not None:
            lines.append(
                f"  pick requests      {picks.requested} requested, {picks.revised} revised, "
                f"{picks.withdrawn} withdrawn"
            )
        if self.robots is not None:
            told = len(self.robots.received) + (len(self.mail.mails) if self.mail else 0)
            lines.append(f"  notifications      {told} received by the demo's robots and mail")
        return lines

    async def fault_once(self, floor: SimulatedLine, *, after_s: float, hold_s: float) -> None:
        """Fault one simulated machine once (``after_s`` real seconds in, for ``hold_s``),
        so that the alarm's notifications and its escalation show: alarms are rare on a
        line that works."""
        if self.robots is None or not floor.machines:
            return
        station = "emb-1" if "emb-1" in floor.machines else sorted(floor.machines)[0]
        machine = floor.machines[station]
        await asyncio.sleep(after_s)
        print(
            f"linegate demo: faulting {station}'s machine for {hold_s:g} s to show who the "
            "alarm reaches (and, left unacknowledged, who is told next)",
            flush=True,
        )
        await machine.fault("thread break (demo)")
        try:
            await asyncio.sleep(hold_s)
        finally:
            await machine.clear_fault()

    def stop(self) -> None:
        if self.robots is not None:
            self.robots.stop()
        if self.mail is not None:
            self.mail.stop()
