"""The demo hub's e-SOP pictures: drawn here, named in the catalog, served over HTTP.

The reference catalog carries no ``media``. :func:`with_pictures` gives every routing
operation one or two pictures of its own (small SVG diagrams: the print station's
"place the shirt on the platen, align the collar", the embroiderer's hoop, the pack
bench's scale and label …), each with its URL below a base URL, its SHA-256, the
instruction step it illustrates and a caption in English and Chinese (the contract has one
``caption`` per file, so it carries both). :class:`PictureServer` serves them, as a hub's
file store would; ``tampered`` names files it serves with other bytes than the catalog's
hash, for the gateway's refusal to be seen.

The catalog comes back under a version of its own (``<version>+sop.<hash>``): it is a
different document from the reference one, and the contract wants a changed catalog under
a new version (a gateway keeps the first contents it took under a version).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

__all__ = ["PICTURE_PATH", "PictureServer", "picture_files", "serve_pictures", "with_pictures"]

JsonDict = dict[str, Any]
PICTURE_PATH = "/sop"  # the pictures' folder below the server's base URL

# What every picture looks like around its drawing.
_W, _H = 640, 420
_FONT = (
    "'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',"
    "sans-serif"
)
_INK = "#2b2d42"
_BLUE = "#118ab2"
_RED = "#ef476f"
_GREEN = "#06a77d"
_METAL = "#8d99ae"
_PAPER = "#ffffff"


@dataclass(frozen=True)
class _Picture:
    name: str  # the file's name below PICTURE_PATH
    capability: str  # the operations it is drawn for
    en: str
    zh: str
    draw: Callable[[], str]  # the drawing's SVG elements, in a 640 x 300 area
    needs: str | None = None  # a word the operation's instructions must hold
    step_word: str | None = None  # the instruction step it illustrates holds this word


# -- the drawings ---------------------------------------------------------------------------


def _arrow(x1: float, y1: float, x2: float, y2: float, colour: str = _BLUE) -> str:
    return (
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="6" '
        f'stroke-linecap="round" marker-end="url(#head-{colour[1:]})"/>'
    )


def _tick(x: float, y: float, r: float = 22) -> str:
    return (
        f'<circle cx="{x}" cy="{y}" r="{r}" fill="{_GREEN}"/>'
        f'<path d="M{x - r * 0.45},{y} l{r * 0.3},{r * 0.32} l{r * 0.55},{-r * 0.62}" '
        f'fill="none" stroke="#fff" stroke-width="{r * 0.22}" stroke-linecap="round" '
        'stroke-linejoin="round"/>'
    )


def _label(x: float, y: float, text: str, size: int = 18, colour: str = _INK) -> str:
    return (
        f'<text x="{x}" y="{y}" font-size="{size}" fill="{colour}" text-anchor="middle" '
        f'font-weight="600">{escape(text)}</text>'
    )


def _shirt(cx: float, top: float, scale: float = 1.0, fill: str = _PAPER) -> str:
    s = scale
    return (
        f'<g transform="translate({cx},{top}) scale({s})">'
        f'<path d="M-40,0 Q0,22 40,0 L95,28 L75,78 L55,68 L55,190 L-55,190 L-55,68 L-75,78 '
        f'L-95,28 Z" fill="{fill}" stroke="{_INK}" stroke-width="4" stroke-linejoin="round"/>'
        f'<path d="M-40,0 Q0,22 40,0" fill="none" stroke="{_INK}" stroke-width="7"/>'
        "</g>"
    )


def _draw_platen() -> str:
    return (
        # The platen, the shirt laid flat on it, the collar on the red line, centred.
        f'<rect x="200" y="40" width="240" height="250" rx="18" fill="{_METAL}"/>'
        '<rect x="214" y="54" width="212" height="222" rx="10" fill="#b8c1d1"/>'
        + _shirt(320, 62, 1.0)
        + f'<line x1="180" y1="64" x2="460" y2="64" stroke="{_RED}" stroke-width="4" '
        'stroke-dasharray="12 8"/>'
        + _label(520, 70, "collar line", 17, _RED)
        + _label(520, 92, "领口标线", 17, _RED)
        + f'<line x1="320" y1="30" x2="320" y2="296" stroke="{_RED}" stroke-width="2" '
        'stroke-dasharray="6 8"/>'
        + _arrow(120, 170, 205, 170)
        + _arrow(520, 170, 435, 170)
        + _label(110, 140, "centre", 17)
        + _label(110, 160, "居中", 17)
        + _tick(320, 30, 18)
    )


def _draw_print_start() -> str:
    return (
        # The printer, the platen loaded, the screen showing the job, Start pressed.
        f'<rect x="90" y="60" width="360" height="200" rx="16" fill="{_METAL}"/>'
        '<rect x="110" y="80" width="200" height="120" rx="8" fill="#d9dee7"/>'
        + _shirt(210, 92, 0.52)
        + '<rect x="330" y="84" width="100" height="64" rx="6" fill="#1b263b"/>'
        + _label(380, 112, "JOB", 18, "#7df9c6")
        + _label(380, 136, "READY", 14, "#7df9c6")
        + f'<circle cx="380" cy="205" r="30" fill="{_GREEN}" stroke="#04553f" stroke-width="4"/>'
        + _label(380, 211, "START", 14, "#fff")
        + _arrow(540, 205, 420, 205)
        + _label(550, 180, "press", 17)
        + _label(550, 240, "按下启动", 17)
        + '<rect x="70" y="260" width="400" height="16" rx="6" fill="#5c677d"/>'
    )


def _draw_hoop() -> str:
    return (
        # The cap on the hoop: brim down, its centre mark on the needle's line.
        '<rect x="170" y="210" width="300" height="40" rx="12" fill="#5c677d"/>'
        f'<path d="M210,210 Q210,70 320,70 Q430,70 430,210 Z" fill="#3a86ff" stroke="{_INK}" '
        'stroke-width="4"/>'
        f'<path d="M190,210 Q320,260 450,210" fill="#2667cc" stroke="{_INK}" stroke-width="4"/>'
        '<path d="M205,150 Q320,120 435,150" fill="none" stroke="#e0e6ef" stroke-width="10" '
        'stroke-linecap="round"/>'
        f'<line x1="320" y1="30" x2="320" y2="280" stroke="{_RED}" stroke-width="3" '
        'stroke-dasharray="10 8"/>'
        f'<polygon points="308,30 332,30 320,52" fill="{_RED}"/>'
        + _label(320, 22, "needle / 针位", 16, _RED)
        + _label(545, 150, "brim down", 17)
        + _label(545, 172, "帽檐朝下", 17)
        + _arrow(545, 185, 470, 232)
        + _tick(320, 150, 16)
    )


def _spool(x: float, y: float, colour: str) -> str:
    return (
        f'<rect x="{x - 34}" y="{y - 70}" width="68" height="12" rx="4" fill="#c9a66b"/>'
        f'<rect x="{x - 26}" y="{y - 58}" width="52" height="104" fill="{colour}"/>'
        f'<rect x="{x - 34}" y="{y + 46}" width="68" height="12" rx="4" fill="#c9a66b"/>'
    )


def _draw_thread() -> str:
    return (
        # The order's colour beside the spools: the matching one is the one threaded.
        '<rect x="60" y="60" width="170" height="210" rx="10" fill="#fff" stroke="#9aa5b8" '
        'stroke-width="3"/>'
        + _label(145, 95, "ORDER", 18)
        + _label(145, 118, "订单", 16)
        + '<rect x="95" y="140" width="100" height="60" rx="8" fill="#e63946"/>'
        + _label(145, 232, "thread: red", 16)
        + _label(145, 254, "线色：红", 16)
        + _spool(330, 160, "#264653")
        + _spool(430, 160, "#e63946")
        + _spool(530, 160, "#f4a261")
        + '<rect x="392" y="78" width="76" height="152" rx="10" fill="none" '
        f'stroke="{_GREEN}" stroke-width="5"/>' + _tick(430, 262, 18)
    )


def _pen(x: float, y: float, length: float = 300, text: str = "") -> str:
    engraved = (
        f'<text x="{x + length * 0.45}" y="{y + 8}" font-size="17" fill="#5a3e0a" '
        f'text-anchor="middle" font-style="italic">{escape(text)}</text>'
        if text
        else ""
    )
    return (
        f'<rect x="{x}" y="{y - 13}" width="{length}" height="26" rx="13" fill="#d4a017" '
        f'stroke="{_INK}" stroke-width="3"/>'
        f'<polygon points="{x + length},{y - 11} {x + length + 40},{y} {x + length},{y + 11}" '
        f'fill="#b08d57" stroke="{_INK}" stroke-width="3"/>'
        f'<rect x="{x + 20}" y="{y - 24}" width="90" height="9" rx="4" fill="#a67c00" '
        f'stroke="{_INK}" stroke-width="2"/>' + engraved
    )


def _draw_fixture() -> str:
    return (
        # The fixture's slot, the pen going in clip up, against the end stop.
        f'<rect x="110" y="170" width="420" height="90" rx="12" fill="{_METAL}"/>'
        '<rect x="140" y="198" width="360" height="34" rx="17" fill="#4a5568"/>'
        '<rect x="500" y="186" width="16" height="58" fill="#2d3748"/>'
        + _pen(150, 120, 300)
        + _arrow(300, 145, 300, 190)
        + _label(320, 60, "clip up, tip to the stop", 18)
        + _label(320, 84, "笔夹朝上，笔尖顶到挡块", 18)
        + _tick(560, 215, 18)
    )


def _draw_lid() -> str:
    return (
        # The laser's lid coming down, then Start.
        f'<rect x="90" y="140" width="360" height="130" rx="12" fill="{_METAL}"/>'
        '<path d="M90,140 L130,50 L490,50 L450,140 Z" fill="#f4a261" fill-opacity="0.75" '
        f'stroke="{_INK}" stroke-width="3"/>'
        + _arrow(270, 40, 270, 125, _RED)
        + '<polygon points="160,170 190,220 130,220" fill="#ffd166" stroke="#333" '
        'stroke-width="3"/>'
        + _label(160, 213, "!", 26)
        + f'<circle cx="380" cy="205" r="30" fill="{_GREEN}" stroke="#04553f" stroke-width="4"/>'
        + _label(380, 211, "START", 14, "#fff")
        + _label(560, 150, "1 close lid", 17)
        + _label(560, 172, "先关护盖", 17)
        + _label(560, 212, "2 press Start", 17)
        + _label(560, 234, "再按启动", 17)
    )


def _draw_inspect() -> str:
    return (
        # The order's text beside the engraving, letter for letter.
        '<rect x="60" y="40" width="230" height="120" rx="10" fill="#fff" stroke="#9aa5b8" '
        'stroke-width="3"/>'
        + _label(175, 76, "ORDER 订单", 17)
        + '<text x="175" y="124" font-size="30" fill="#1b263b" text-anchor="middle" '
        'font-style="italic">Anna 2026</text>'
        + _pen(140, 235, 330, "Anna 2026")
        + '<circle cx="360" cy="236" r="62" fill="#e0f2ff" fill-opacity="0.35" '
        f'stroke="{_INK}" stroke-width="6"/>'
        + f'<line x1="405" y1="280" x2="455" y2="325" stroke="{_INK}" stroke-width="12" '
        'stroke-linecap="round"/>'
        + _label(420, 110, "=", 48, _GREEN)
        + _tick(560, 100, 24)
        + _label(560, 150, "same text", 17)
        + _label(560, 172, "文字一致", 17)
    )


def _draw_tissue() -> str:
    return (
        # The item wrapped in tissue in the open gift box, the lid ready to close.
        '<rect x="150" y="150" width="300" height="120" rx="6" fill="#8338ec"/>'
        '<path d="M170,160 Q230,110 300,150 Q360,105 430,160 L430,220 L170,220 Z" '
        'fill="#fff4e6" stroke="#d6c2a8" stroke-width="3"/>'
        + _pen(230, 180, 150)
        + '<path d="M170,185 Q300,150 430,185" fill="none" stroke="#d6c2a8" stroke-width="3"/>'
        + '<rect x="140" y="40" width="320" height="40" rx="6" fill="#9d4edd"/>'
        + '<rect x="290" y="40" width="20" height="40" fill="#ffd166"/>'
        + _arrow(300, 88, 300, 140)
        + _label(555, 150, "tissue, then lid", 17)
        + _label(555, 172, "先包纸，再盖盒", 17)
    )


def _draw_tray() -> str:
    pockets = "".join(
        f'<rect x="{x}" y="130" width="110" height="120" rx="12" fill="#ced4da" '
        f'stroke="#868e96" stroke-width="3"/>'
        for x in (130, 265, 400)
    )
    return (
        # The tray's pockets, one item in each, the last going in.
        '<rect x="110" y="110" width="420" height="160" rx="16" fill="#e9ecef" '
        'stroke="#868e96" stroke-width="3"/>'
        + pockets
        + '<rect x="150" y="150" width="70" height="80" rx="8" fill="#f4a261"/>'
        + '<circle cx="320" cy="190" r="36" fill="#2a9d8f"/>'
        + '<rect x="425" y="40" width="60" height="70" rx="8" fill="#e76f51"/>'
        + _arrow(455, 115, 455, 160)
        + _label(320, 300, "one item per pocket · 每个槽位放一件", 17)
        + _tick(185, 120, 14)
        + _tick(320, 120, 14)
    )


def _draw_fold_bag() -> str:
    return (
        # The shirt folded in thirds, then into the polybag.
        _shirt(130, 70, 0.8)
        + f'<line x1="92" y1="110" x2="92" y2="222" stroke="{_RED}" stroke-width="3" '
        'stroke-dasharray="8 6"/>'
        + f'<line x1="168" y1="110" x2="168" y2="222" stroke="{_RED}" stroke-width="3" '
        'stroke-dasharray="8 6"/>'
        + _arrow(240, 160, 300, 160)
        + '<rect x="320" y="110" width="90" height="110" rx="6" fill="#fff" '
        f'stroke="{_INK}" stroke-width="4"/>'
        + _arrow(420, 160, 460, 160)
        + '<rect x="470" y="80" width="130" height="170" rx="8" fill="#cfe8ff" '
        'fill-opacity="0.8" stroke="#5b8bb5" stroke-width="4"/>'
        + '<rect x="490" y="130" width="90" height="100" rx="6" fill="#fff" '
        f'stroke="{_INK}" stroke-width="3"/>'
        + _label(130, 280, "fold 折叠", 17)
        + _label(535, 280, "polybag 快递袋", 17)
    )


def _barcode(x: float, y: float) -> str:
    widths = (3, 1, 2, 1, 3, 2, 1, 1, 3, 1, 2, 3, 1, 2, 1, 3)
    bars, at = [], x
    for i, w in enumerate(widths):
        if i % 2 == 0:
            bars.append(f'<rect x="{at}" y="{y}" width="{w * 2}" height="34" fill="#111"/>')
        at += w * 2 + 1
    return "".join(bars)


def _draw_scale_label() -> str:
    return (
        # The parcel on the scale, the weight read, the printed label on its top.
        '<rect x="100" y="220" width="320" height="50" rx="10" fill="#5c677d"/>'
        '<rect x="140" y="236" width="110" height="24" rx="4" fill="#1b263b"/>'
        + _label(195, 254, "0.246 kg", 15, "#7df9c6")
        + '<rect x="150" y="110" width="220" height="110" rx="10" fill="#cfe8ff" '
        'stroke="#5b8bb5" stroke-width="4"/>'
        + '<rect x="455" y="70" width="130" height="90" rx="6" fill="#fff" '
        f'stroke="{_INK}" stroke-width="3"/>'
        + _barcode(470, 84)
        + _label(520, 140, "SO-1001", 14)
        + _arrow(450, 150, 340, 160)
        + _label(520, 200, "weigh, then label", 17)
        + _label(520, 222, "先称重，再贴面单", 17)
    )


def _draw_carton() -> str:
    return (
        # The gift box in the carton, the voids filled.
        '<path d="M120,120 L520,120 L520,280 L120,280 Z" fill="#d4a373" stroke="#7f5539" '
        'stroke-width="4"/>'
        + '<path d="M120,120 L70,70 L300,70 L320,120 Z" fill="#e3b88a" stroke="#7f5539" '
        'stroke-width="4"/>'
        + '<path d="M520,120 L570,70 L340,70 L320,120 Z" fill="#e3b88a" stroke="#7f5539" '
        'stroke-width="4"/>'
        + '<rect x="220" y="150" width="200" height="110" rx="6" fill="#8338ec"/>'
        + '<rect x="310" y="150" width="20" height="110" fill="#ffd166"/>'
        + "".join(
            f'<circle cx="{x}" cy="{y}" r="16" fill="#fefae0" stroke="#ccc5b9" stroke-width="3"/>'
            for x, y in ((160, 160), (170, 205), (155, 250), (470, 165), (480, 210), (462, 252))
        )
        + _label(320, 310, "box in, voids filled · 放入礼盒，填满空隙", 17)
    )


def _draw_generic(op: str) -> str:
    return (
        '<rect x="170" y="60" width="300" height="200" rx="14" fill="#fff" stroke="#9aa5b8" '
        'stroke-width="3"/>'
        + "".join(
            f'<rect x="200" y="{y}" width="{w}" height="14" rx="7" fill="#ced4da"/>'
            for y, w in ((100, 220), (140, 180), (180, 200), (220, 150))
        )
        + _label(320, 300, op, 20)
    )


_PICTURES: tuple[_Picture, ...] = (
    _Picture(
        "print-platen.svg",
        "dtg_print",
        "Place the shirt flat on the platen, collar on the line",
        "把T恤平铺在台板上，领口对齐标线",
        _draw_platen,
        step_word="platen",
    ),
    _Picture(
        "print-start.svg",
        "dtg_print",
        "Start the job on the printer",
        "在印花机上启动作业",
        _draw_print_start,
        step_word="start",
    ),
    _Picture(
        "embroider-hoop.svg",
        "embroider",
        "Hoop the cap: brim down, centre on the needle",
        "把帽子装上绣框：帽檐朝下，中心对准针位",
        _draw_hoop,
        step_word="hoop",
    ),
    _Picture(
        "embroider-thread.svg",
        "embroider",
        "The thread colour must match the order",
        "线色必须与订单一致",
        _draw_thread,
        step_word="thread",
    ),
    _Picture(
        "engrave-fixture.svg",
        "laser_engrave",
        "Place the item in the fixture, clip up",
        "把商品放进治具，笔夹朝上",
        _draw_fixture,
        step_word="fixture",
    ),
    _Picture(
        "engrave-lid.svg",
        "laser_engrave",
        "Close the lid, then start",
        "关上护盖，再启动",
        _draw_lid,
        step_word="lid",
    ),
    _Picture(
        "inspect-text.svg",
        "qc_inspect",
        "Compare the engraving with the order text",
        "核对刻字与订单文字是否一致",
        _draw_inspect,
        step_word="compare",
    ),
    _Picture(
        "box-tissue.svg",
        "kit_assemble",
        "Wrap in tissue, then close the gift box",
        "用拷贝纸包好，再合上礼盒",
        _draw_tissue,
        needs="tissue",
        step_word="tissue",
    ),
    _Picture(
        "assemble-tray.svg",
        "kit_assemble",
        "One item in each pocket of the tray",
        "每个内托槽位放一件商品",
        _draw_tray,
        needs="tray",
        step_word="tray",
    ),
    _Picture(
        "pack-fold-bag.svg",
        "pack",
        "Fold the item, then into the polybag",
        "折叠商品，再装入快递袋",
        _draw_fold_bag,
        needs="polybag",
        step_word="polybag",
    ),
    _Picture(
        "pack-carton.svg",
        "pack",
        "The box into the carton, voids filled",
        "礼盒放进纸箱，填满空隙",
        _draw_carton,
        needs="carton",
        step_word="carton",
    ),
    _Picture(
        "pack-scale-label.svg",
        "pack",
        "Weigh the parcel, then apply the printed label",
        "称重后贴上打印好的面单",
        _draw_scale_label,
        step_word="label",
    ),
)


def _svg(drawing: str, en: str, zh: str, step: int | None) -> bytes:
    """A picture: the drawing above a caption band in English and Chinese."""
    heads = "".join(
        f'<marker id="head-{c[1:]}" viewBox="0 0 10 10" refX="6" refY="5" markerWidth="4" '
        f'markerHeight="4" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{c}"/></marker>'
        for c in (_BLUE, _RED)
    )
    badge = (
        f'<circle cx="40" cy="40" r="26" fill="{_BLUE}"/>'
        f'<text x="40" y="49" font-size="26" fill="#fff" text-anchor="middle" '
        f'font-weight="700">{step}</text>'
        if step is not None
        else ""
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" font-family="{_FONT}">'
        f"<defs>{heads}</defs>"
        f'<rect width="{_W}" height="{_H}" rx="18" fill="#f7f9fc"/>'
        f"{drawing}{badge}"
        f'<rect y="330" width="{_W}" height="90" fill="#1f2a44"/>'
        f'<rect y="330" width="{_W}" height="90" rx="18" fill="#1f2a44"/>'
        f'<text x="{_W / 2}" y="367" font-size="22" fill="#fff" text-anchor="middle" '
        f'font-weight="600">{escape(en)}</text>'
        f'<text x="{_W / 2}" y="402" font-size="22" fill="#ffd166" text-anchor="middle">'
        f"{escape(zh)}</text>"
        "</svg>\n"
    ).encode()


def _step(instructions: list[str], word: str | None) -> int | None:
    """The 1-based instruction step that holds ``word``, or None (the whole operation)."""
    if word is None:
        return None
    for i, text in enumerate(instructions, start=1):
        if word in text.lower():
            return i
    return None


def _chosen(op: JsonDict) -> list[_Picture]:
    """An operation's pictures: those drawn for its capability (and its instructions)."""
    words = " ".join(op.get("instructions", [])).lower()
    found = [
        p
        for p in _PICTURES
        if p.capability == op["capability"] and (p.needs is None or p.needs in words)
    ]
    if found:
        return found[:2]
    name = f"op-{''.join(c if c.isalnum() else '-' for c in op['op'])}.svg"
    steps = "Follow the steps on the screen"
    return [
        _Picture(
            name, op["capability"], steps, "按屏幕上的步骤操作", lambda: _draw_generic(op["op"])
        )
    ]


def with_pictures(catalog: JsonDict, base_url: str) -> tuple[JsonDict, dict[str, bytes]]:
    """``catalog`` with pictures on every routing operation (a copy: the argument is left
    as it is), their URLs below ``base_url``; and the files, by their name below
    :data:`PICTURE_PATH` (what :class:`PictureServer` serves)."""
    out = copy.deepcopy(catalog)
    files: dict[str, bytes] = {}
    root = base_url.rstrip("/") + PICTURE_PATH
    for routing in out["routings"]:
        for op in routing["operations"]:
            media = []
            for picture in _chosen(op):
                step = _step(op.get("instructions", []), picture.step_word)
                data = _svg(picture.draw(), picture.en, picture.zh, step)
                files[picture.name] = data
                entry: JsonDict = {
                    "url": f"{root}/{picture.name}",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "kind": "image",
                    "caption": f"{picture.en} / {picture.zh}",
                }
                if step is not None:
                    entry["step"] = step
                media.append(entry)
            op["media"] = media
    listed = json.dumps([r["operations"] for r in out["routings"]], sort_keys=True)
    out["version"] = f"{catalog['version']}+sop.{hashlib.sha256(listed.encode()).hexdigest()[:8]}"
    return out, files


def picture_files() -> dict[str, bytes]:
    """Every picture the demo hub can serve, by name (without a catalog: for a look)."""
    return {p.name: _svg(p.draw(), p.en, p.zh, None) for p in _PICTURES}


# -- the server --------------------------------------------------------------------------


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]  # the caller owns signals
        yield


class PictureServer:
    """The hub's file store for the pictures: ``GET {PICTURE_PATH}/{name}``.

    Its socket is bound when it is made, so :attr:`base_url` is known before the catalog
    that names it is written (port 0: any free port). ``files`` may be added to until it
    serves and after. ``tampered``: names served with other bytes than ``files`` holds (a
    hash the catalog gives for them no longer matches). ``streamed``: names served without
    a Content-Length (as a chunked answer). ``requests`` counts each name asked for, and
    ``authorizations`` keeps each request's Authorization header (None: it had none).
    """

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tampered: Iterable[str] = (),
        streamed: Iterable[str] = (),
    ) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.tampered = set(tampered)
        self.streamed = set(streamed)
        self.requests: Counter[str] = Counter()
        self.authorizations: list[str | None] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.host = host
        self.port: int = sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        self._server: _Uvicorn | None = None

    def url(self, name: str) -> str:
        return f"{self.base_url}{PICTURE_PATH}/{name}"

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.requests[name] += 1
        self.authorizations.append(request.headers.get("authorization"))
        data = self.files.get(name)
        if data is None:
            return Response(b"not found", status_code=404)
        if name in self.tampered:
            data += b"<!-- changed after the catalog was made -->\n"
        media_type = "image/svg+xml" if name.endswith(".svg") else "application/octet-stream"
        if name in self.streamed:

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(data), 4096):
                    yield data[i : i + 4096]

            return StreamingResponse(chunks(), media_type=media_type)
        return Response(data, media_type=media_type)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(f"{PICTURE_PATH}/{{name}}", self._file, methods=["GET"])])

    async def serve(self) -> None:
        """Serve until cancelled; the socket is closed after."""
        server = self._server = _Uvicorn(
            uvicorn.Config(self.app(), log_level="warning", lifespan="off", access_log=False)
        )
        try:
            await server.serve(sockets=[self._sock])
        finally:
            self._sock.close()

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    def stop(self) -> None:
        """Ask a serving server to finish (its :meth:`serve` then returns)."""
        if self._server is not None:
            self._server.should_exit = True

    def close(self) -> None:
        """Close the socket of a server that never served."""
        self._sock.close()


@contextlib.asynccontextmanager
async def serve_pictures(
    files: Mapping[str, bytes],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tampered: Iterable[str] = (),
    streamed: Iterable[str] = (),
) -> AsyncIterator[PictureServer]:
    """A :class:`PictureServer` serving ``files`` in this loop, until the block ends."""
    server = PictureServer(files, host, port, tampered=tampered, streamed=streamed)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task  # its failure, raised here
                raise RuntimeError("the picture server stopped before it served")
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.stop()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        server.close()
