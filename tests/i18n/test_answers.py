"""The station API answers in English and Chinese: a refusal, a reply, the screen's next
step and the raised alarms each carry ``message_zh`` / ``next_zh`` beside the English,
which stays what it was (and is all the hub gets).

A real gateway serving on loopback, as in tests/gateway/test_station_api.py; the Chinese
expected is the catalog's for those messages (gateway/i18n/locale/zh_CN).
"""

from __future__ import annotations

from pathlib import Path

from gateway.i18n import t
from gateway.orderbook.alarms import raise_alarm
from gateway.store.rows import Severity
from tests.gateway.test_station_api import served_line


async def test_a_refusal_and_a_reply_say_it_in_chinese_too(tmp_path: Path) -> None:
    async with served_line(tmp_path) as (ln, gw):
        stranger = await ln.api.post("/api/stations/pack-1/login", json={"badge": "OP-9999"})
        assert stranger.status_code == 409
        assert stranger.json() == {
            "ok": False,
            "code": "UNKNOWN_BADGE",
            "message": "Badge OP-9999 is not an operator of this line.",
            "next": "Ask the line lead to add your badge.",
            "message_zh": "工牌 OP-9999 不是本产线的操作员。",
            "next_zh": "请班组长添加你的工牌。",
        }

        badge = ln.badges["pack-1"]
        name = next(o.name for o in gw.config.operators if o.badge == badge)
        welcome = await ln.post("pack-1", "login", {"badge": badge})
        assert welcome["message"] == f"Welcome, {name}."
        assert welcome["message_zh"] == f"欢迎，{name}。"
        # No order yet: nothing waits at the station, and the screen says so.
        assert welcome["next"] == "Nothing is waiting for this station."
        assert welcome["next_zh"] == "本工位暂无待办任务。"
        view = await ln.view("pack-1")
        assert (view["next"], view["next_zh"]) == (welcome["next"], welcome["next_zh"])

        idle = await ln.api.post("/api/stations/pack-1/start")
        assert idle.status_code == 409
        answer = idle.json()
        assert (answer["code"], answer["message"], answer["message_zh"]) == (
            "NO_TASK",
            "There is no task at this station.",
            "本工位没有任务。",
        )
        assert answer["next"] == "Press Next for the next task, or scan a unit's traveller."
        assert answer["next_zh"] == "按“下一个任务”领取任务，或扫描产品的流转卡。"


async def test_alarms_read_in_chinese_and_reach_the_hub_in_english(tmp_path: Path) -> None:
    async with served_line(tmp_path) as (ln, gw):
        core = gw.core
        with core.store.transaction():
            said = t(
                "{printer}: {problem}. {n} label(s) waiting; they print when it is fixed.",
                printer="pack-1/printer",
                problem="paper out",
                n=2,
            )
            raise_alarm(core, "printer:pack-1", "printer_problem", "pack-1", Severity.MAJOR, said)
            # Words from outside the line (a device's own) read the same in both.
            raise_alarm(core, "fault:dtg-1", "machine_fault", "dtg-1", Severity.MAJOR, "head jam")
        rows = {a["alarm_id"]: a for a in (await ln.api.get("/api/alarms")).json()}
        printer = rows["printer:pack-1"]
        english = "pack-1/printer: paper out. 2 label(s) waiting; they print when it is fixed."
        assert printer["message"] == english
        # The printer's own words ("paper out") stay as it said them.
        assert (
            printer["message_zh"]
            == "pack-1/printer：paper out。2 张标签等待打印；故障排除后自动打印。"
        )
        assert (rows["fault:dtg-1"]["message"], rows["fault:dtg-1"]["message_zh"]) == (
            "head jam",
            "head jam",
        )
        raised = await ln.events("alarm.raised", 2)
        sent = next(e["data"] for e in raised if e["data"]["alarm_id"] == "printer:pack-1")
        assert sent == {
            "alarm_id": "printer:pack-1",
            "kind": "printer_problem",
            "source": "pack-1",
            "severity": "major",
            "message": english,
        }
