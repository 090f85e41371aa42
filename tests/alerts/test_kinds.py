"""Every alarm kind the gateway raises is one a rule may name: a kind added in the code
and not in ALARM_KINDS would be refused in line.toml and reach nobody but through "*"."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import gateway
from gateway.config.alerts import ALARM_KINDS, NOTIFICATION_KIND


def _raised_kinds() -> dict[str, str]:
    """kind → where: the third argument of every raise_alarm call in the gateway's code,
    a string or a module-level string constant."""
    found: dict[str, str] = {}
    root = Path(gateway.__file__).parent
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            t.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for t in node.targets
            if isinstance(t, ast.Name) and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and len(node.args) >= 3):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if isinstance(node.func, ast.Attribute):
                name = node.func.attr
            if name != "raise_alarm":
                continue
            arg = node.args[2]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                kind = arg.value
            elif isinstance(arg, ast.Name) and arg.id in constants:
                kind = constants[arg.id]
            elif isinstance(arg, ast.Name):  # imported: the module's value of it
                module = ".".join(("gateway", *path.relative_to(root).with_suffix("").parts))
                kind = getattr(importlib.import_module(module), arg.id)
            else:
                raise AssertionError(f"{path}:{node.lineno}: an alarm kind not written out")
            assert isinstance(kind, str), (path, node.lineno)
            found.setdefault(kind, f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_raised_kind_can_be_named_in_a_rule() -> None:
    raised = _raised_kinds()
    # The floor of what the issue names: machine fault, shortage, quality, device offline,
    # printer problem, hub refused, storage; and the parcel that waits for a line lead.
    for kind in (
        "machine_fault",
        "material_shortage",
        "quality",
        "device_offline",
        "printer_problem",
        "hub_refused",
        "disk_low",
        "packing",
    ):
        assert kind in raised, kind
    unknown = {
        k: where for k, where in raised.items() if k not in ALARM_KINDS | {NOTIFICATION_KIND}
    }
    assert not unknown, unknown
