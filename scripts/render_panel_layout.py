#!/usr/bin/env python
"""Picture of the Relight sidebar panels, drawn from their own ``draw()`` code under real bpy.

The pip ``bpy`` module only runs in background mode: it opens no window, draws no UI and refuses
GPU drawing, so no screenshot can be taken. Instead this script registers the add-on the way
tests/addon/conftest.py does, puts a typical shot's settings in the scene, calls every Relight
panel's real ``draw(context)`` with ``LayoutRecorder`` (a stand-in for ``bpy.types.UILayout``
that records rows, columns, labels, properties and operators, taking each property's name and
value from the real RNA and each operator's label from the registered operator), and paints the
recording with Pillow in the colours of Blender's default theme (read from bpy) at 2x scale.
Blender's icons are not drawn: its icon sheet is not reachable from bpy.

Usage::

    python scripts/render_panel_layout.py [--out docs/images/addon_panel.png]
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ADDON_MODULE = "relight_addon"  # the name tests/addon/conftest.py registers it under
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="relight_blender_user_"))

import bpy  # noqa: E402  (after BLENDER_USER_RESOURCES: never touch the real user config)
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

# --------------------------------------------------------------------------------------------
# Recording: a UILayout stand-in
# --------------------------------------------------------------------------------------------


@dataclass
class Item:
    """One recorded widget. ``widget``: label, separator, operator, or for a property its kind:
    text, path, number, enum, pointer, checkbox."""

    widget: str
    text: str = ""
    value: str = ""
    checked: bool = False
    split: bool = False  # use_property_split: name in a left column, widget in the right one
    icon: str = "NONE"
    properties: dict = field(default_factory=dict)  # operator: the properties the panel set


class OperatorPropertiesRecorder:
    """What ``layout.operator()`` returns: accepts only the operator's real property names."""

    def __init__(self, idname: str, rna_type, values: dict):
        object.__setattr__(self, "_idname", idname)
        object.__setattr__(self, "_names", set(rna_type.properties.keys()) - {"rna_type"})
        object.__setattr__(self, "_values", values)

    def __setattr__(self, name, value):
        if name not in self._names:
            raise AttributeError(f"operator {self._idname} has no property {name!r}")
        self._values[name] = value


class LayoutRecorder:
    """Records what a panel's ``draw()`` asks of ``self.layout``.

    Like Blender, a sub-layout copies property-split, decorate and operator context from its parent
    when it is made, while ``enabled``/``active``/``alert`` apply to everything below a layout when
    it is drawn (``is_enabled`` walks the chain)."""

    def __init__(self, kind: str = "column", align: bool = False, parent: LayoutRecorder | None = None,
                 factor: float = 0.0):
        self.kind, self.align, self.factor, self.parent = kind, align, factor, parent
        self.children: list[LayoutRecorder | Item] = []
        self.use_property_split = parent.use_property_split if parent else False
        self.use_property_decorate = parent.use_property_decorate if parent else True
        self.operator_context = parent.operator_context if parent else "INVOKE_REGION_WIN"
        self.enabled = self.active = True
        self.alert = False

    # sub-layouts
    def _sub(self, kind, align=False, factor=0.0):
        sub = LayoutRecorder(kind, align, self, factor)
        self.children.append(sub)
        return sub

    def row(self, align=False, heading="", **_):
        return self._sub("row", align)

    def column(self, align=False, heading="", **_):
        return self._sub("column", align)

    def box(self):
        return self._sub("box")

    def split(self, factor=0.0, align=False):
        return self._sub("split", align, factor)

    # items
    def label(self, text="", icon="NONE", **_):
        self.children.append(Item("label", text=text, icon=icon))

    def separator(self, factor=1.0, **_):
        self.children.append(Item("separator", value=str(factor)))

    def prop(self, data, property, text=None, icon="NONE", **_):
        rna = data.bl_rna.properties.get(property)
        if rna is None:  # Blender only prints "rna_uiItemR: property not found": fail loudly instead
            raise AttributeError(f"{data.bl_rna.identifier} has no property {property!r}")
        widget, value, checked = describe_property(rna, getattr(data, property))
        self.children.append(Item(widget, text=rna.name if text is None else text, value=value,
                                  checked=checked, split=self.use_property_split, icon=icon))

    def operator(self, operator, text=None, icon="NONE", **_):
        module, name = operator.split(".")
        rna_type = getattr(getattr(bpy.ops, module), name).get_rna_type()  # KeyError if not registered
        item = Item("operator", text=rna_type.name if text is None else text, icon=icon)
        self.children.append(item)
        return OperatorPropertiesRecorder(operator, rna_type, item.properties)

    def is_enabled(self) -> bool:
        return self.enabled and self.active and (self.parent is None or self.parent.is_enabled())

    def is_alert(self) -> bool:
        return self.alert or (self.parent is not None and self.parent.is_alert())

    def walk(self):
        """(layout, item) for every recorded item below this layout, in drawing order."""
        for child in self.children:
            yield from child.walk() if isinstance(child, LayoutRecorder) else ((self, child),)


def describe_property(rna, value) -> tuple[str, str, bool]:
    """(widget kind, displayed value, checked) of a property as Blender shows it."""
    if rna.type == "BOOLEAN":
        return "checkbox", "", bool(value)
    if rna.type == "ENUM":
        return "enum", rna.enum_items[value].name, False
    if rna.type == "POINTER":
        return "pointer", value.name if value is not None else "", False
    if rna.type == "STRING":
        return ("path" if rna.subtype in ("FILE_PATH", "DIR_PATH") else "text"), value, False
    if rna.type == "FLOAT":
        if rna.unit == "CAMERA":  # unit display: millimetres, trailing zeros dropped
            return "number", f"{value:g} mm", False
        return "number", f"{value:.{rna.precision}f}", False
    return "number", str(value), False


@dataclass
class PanelRecord:
    idname: str
    label: str
    depth: int  # 0: a tab's panel, 1: its sub-panel...
    closed: bool  # as a new scene shows it (bl_options DEFAULT_CLOSED)
    body: LayoutRecorder
    header: LayoutRecorder | None


class _PanelInstance:
    """``self`` for a panel's draw functions: the layout, plus the class's attributes and methods."""

    def __init__(self, cls, layout):
        self._cls, self.layout = cls, layout

    def __getattr__(self, name):
        attr = getattr(self._cls, name)
        return attr.__get__(self) if inspect.isfunction(attr) else attr


def relight_panels(addon) -> list[type]:
    """The add-on's sidebar panels (``bl_category`` "Relight"), in registration order."""
    return [c for c in addon.classes
            if issubclass(c, bpy.types.Panel) and getattr(c, "bl_category", "") == "Relight"]


def record_panels(panel_classes, context) -> list[PanelRecord]:
    """Run each panel's real ``poll``/``draw_header``/``draw`` with recorders, parents first."""
    by_id = {c.bl_idname: c for c in panel_classes}
    records = []

    def depth(cls):
        parent = getattr(cls, "bl_parent_id", "")
        return 0 if not parent else 1 + depth(by_id[parent])

    def visit(parent_id):
        for cls in panel_classes:
            if getattr(cls, "bl_parent_id", "") != parent_id:
                continue
            if hasattr(cls, "poll") and not cls.poll(context):
                continue
            header = None
            if hasattr(cls, "draw_header"):
                header = LayoutRecorder("row")
                cls.draw_header(_PanelInstance(cls, header), context)
            body = LayoutRecorder()
            cls.draw(_PanelInstance(cls, body), context)
            records.append(PanelRecord(cls.bl_idname, cls.bl_label, depth(cls),
                                       "DEFAULT_CLOSED" in getattr(cls, "bl_options", set()), body, header))
            visit(cls.bl_idname)

    visit("")
    return records


# --------------------------------------------------------------------------------------------
# Painting: Blender's default dark theme, metrics of a 1x UI scaled by SCALE
# --------------------------------------------------------------------------------------------

SCALE = 2  # the output: Blender at 2x (a HiDPI screen)
SUPER = 2  # painted this much larger, then downsampled: Pillow's shapes are not anti-aliased
UNIT = 20  # UI_UNIT_Y at 1x: widget height
REGION_WIDTH, TAB_WIDTH = 380, 22
PANEL_INSET, PANEL_GAP, HEADER_HEIGHT, CONTENT_MARGIN = 4, 4, 24, 10
SPACE_ROOT, SPACE_COLUMN, SPACE_ROW, SEPARATOR = 5, 2, 4, 6
SPLIT_FACTOR = 0.4  # UI_ITEM_PROP_SEP_DIVIDE: the name column's share
FONT_POINTS = 11
FONT = Path(bpy.utils.system_resource("DATAFILES")) / "fonts" / "Inter.woff2"


def _rgb(color):
    """A theme colour (display values in 0..1) as opaque RGBA bytes."""
    return tuple(round(c * 255) for c in color[:3]) + (255,)


class Theme:
    """Colours of the default theme, read from bpy (the sidebar of the 3D view)."""

    def __init__(self, prefs):
        theme = prefs.themes[0]
        ui, space = theme.user_interface, theme.view_3d.space
        if hasattr(space, "tab_active"):  # Blender 4.x: tab colours per space
            active, back, outline = space.tab_active, space.tab_back, space.tab_outline
        else:  # Blender 5.0: one tab widget style for every space
            active, back, outline = ui.wcol_tab.inner_sel, ui.wcol_tab.inner, ui.wcol_tab.outline
        self.region = _rgb(active)  # the sidebar's background (drawn over the viewport)
        self.tab_back, self.tab_active, self.tab_outline = _rgb(back), _rgb(active), _rgb(outline)
        if hasattr(space, "panelcolors"):  # Blender 4.x: panel colours per space
            header, back, sub_back = space.panelcolors.header, space.panelcolors.back, space.panelcolors.sub_back
        else:  # Blender 5.0: in the user interface theme
            header, back, sub_back = ui.panel_header, ui.panel_back, ui.panel_sub_back
        self.panel_header, self.panel_back, self.sub_back = _rgb(header), _rgb(back), sub_back[:]
        self.title, self.text = _rgb(space.title), _rgb(space.text)
        self.widgets = {name: getattr(ui, "wcol_" + name) for name in ("tool", "text", "num", "menu", "option")}
        self.roundness = ui.wcol_tool.roundness


def _blend(a, b, t):
    """a over b with opacity t (both RGBA tuples)."""
    return tuple(round(x * t + y * (1 - t)) for x, y in zip(a[:3], b[:3])) + (255,)


class Painter:
    """Lays out recorded panels and paints them; coordinates are 1x units, scaled when painting."""

    def __init__(self, theme: Theme):
        self.theme = theme
        self.k = SCALE * SUPER
        self.font = ImageFont.truetype(str(FONT), FONT_POINTS * self.k)
        self.ops: list[tuple] = []  # (kind, args) painted in order once the height is known

    # -- layout ------------------------------------------------------------------------------
    def layout(self, records: list[PanelRecord]) -> int:
        """Queue the paint operations of the whole sidebar; returns its height (1x)."""
        y, i = PANEL_INSET, 0
        x0, x1 = PANEL_INSET, REGION_WIDTH - TAB_WIDTH - PANEL_INSET
        while i < len(records):  # one top-level panel (and its sub-panels) at a time
            top = y
            self.ops.append(("panel_back", ()))  # painted first; its bottom is patched in below
            index = len(self.ops) - 1
            y, i = self._panel(records, i, x0, x1, y)
            self.ops[index] = ("panel_back", (x0, top, x1, y))
            for j in range(index, len(self.ops)):  # a sub-panel at the bottom follows the rounded corners
                kind, args = self.ops[j]
                if kind == "sub_back":
                    self.ops[j] = (kind, args[:4] + (args[3] == y,))
            y += PANEL_GAP
        return y

    def _panel(self, records, i, x0, x1, y) -> tuple[int, int]:
        """records[i] and its sub-panels (the records after it that are deeper); returns the y below
        them and the index of the next record."""
        record = records[i]
        indent = 0 if record.depth == 0 else 4
        if record.depth > 0:
            self.ops.append(("sub_back", ()))
            sub_index = len(self.ops) - 1
        top = y
        self.ops.append(("header", (x0, y, x1, record, not record.closed)))
        y += HEADER_HEIGHT
        i += 1
        if not record.closed:
            y = self._place(record.body, x0 + CONTENT_MARGIN + indent, y + 2, x1 - CONTENT_MARGIN - indent,
                            corners=(True,) * 4, root=True) + CONTENT_MARGIN - 2
        while i < len(records) and records[i].depth > record.depth:
            if record.closed:  # a closed panel hides its sub-panels
                i += 1
            else:
                y, i = self._panel(records, i, x0 + indent, x1, y)
        if record.depth > 0:
            self.ops[sub_index] = ("sub_back", (x0, top, x1, y))
        return y, i

    def _place(self, node, x0, y, x1, corners, root=False) -> int:
        """Queue ``node`` in the box x0..x1 from y; returns the y below it."""
        if isinstance(node, Item):
            return self._item(node, x0, y, x1, corners)
        if node.kind == "box":  # painted under its children: queued first, its bottom patched after
            self.ops.append(("box", ()))
            index = len(self.ops) - 1
            bottom = self._place_children(node, x0 + 6, y + 6, x1 - 6, "column", False, corners, root) + 6
            self.ops[index] = ("box", (x0, y, x1, bottom))
            return bottom
        return self._place_children(node, x0, y, x1, node.kind, node.align, corners, root)

    def _place_children(self, node, x0, y, x1, kind, align, corners, root):
        children = node.children
        n = len(children)
        if n == 0:
            return y
        tl, tr, br, bl = corners
        if kind == "column":
            space = 0 if align else (SPACE_ROOT if root else SPACE_COLUMN)
            for i, child in enumerate(children):
                c = corners if not align else (tl and i == 0, tr and i == 0, br and i == n - 1, bl and i == n - 1)
                y = self._with_state(child, node, x0, y, x1, c) + (space if i < n - 1 else 0)
            return y
        # row or split: side by side
        space = 0 if align else SPACE_ROW
        if kind == "split" and node.factor > 0 and n == 2:
            widths = [(x1 - x0 - space) * node.factor, (x1 - x0 - space) * (1 - node.factor)]
        else:
            widths = [(x1 - x0 - space * (n - 1)) / n] * n
        bottom, x = y, x0
        for i, (child, w) in enumerate(zip(children, widths)):
            c = corners if not align else (tl and i == 0, tr and i == n - 1, br and i == n - 1, bl and i == 0)
            bottom = max(bottom, self._with_state(child, node, x, y, x + w, c))
            x += w + space
        return bottom

    def _with_state(self, child, layout, x0, y, x1, corners):
        before = len(self.ops)
        bottom = self._place(child, x0, y, x1, corners)
        if isinstance(child, Item):  # greyed out / red from the layouts it sits in
            for j in range(before, len(self.ops)):
                kind, args = self.ops[j]
                self.ops[j] = (kind, args + ({"enabled": layout.is_enabled(), "alert": layout.is_alert()},))
        return bottom

    def _item(self, item, x0, y, x1, corners) -> int:
        if item.widget == "separator":
            return y + round(SEPARATOR * float(item.value))
        if item.widget in ("label", "operator"):
            self.ops.append((item.widget, (x0, y, x1, item, corners)))
            return y + UNIT
        if item.split:
            xs = x0 + (x1 - x0) * SPLIT_FACTOR
            if item.widget != "checkbox":  # checkboxes keep their name beside the box
                self.ops.append(("split_name", (x0, y, xs - 6, item.text)))
            self.ops.append((item.widget, (xs, y, x1, item, corners, False)))
        else:
            self.ops.append((item.widget, (x0, y, x1, item, corners, True)))
        return y + UNIT

    # -- painting ----------------------------------------------------------------------------
    def paint(self, height: int) -> Image.Image:
        k, th = self.k, self.theme
        img = Image.new("RGBA", (REGION_WIDTH * k, height * k), th.region)
        self.draw = ImageDraw.Draw(img)
        self._tabs(height)
        for kind, args in self.ops:
            getattr(self, "_paint_" + kind)(*args)
        return img.resize((REGION_WIDTH * SCALE, height * SCALE), Image.LANCZOS).convert("RGB")

    def _radius(self):
        """Corner radius of widgets and panels: the theme's roundness of half a widget's height."""
        return round(self.theme.roundness * UNIT * 0.5 * self.k)

    def _r(self, x0, y0, x1, y1):
        k = self.k
        return [round(x0 * k), round(y0 * k), round(x1 * k) - 1, round(y1 * k) - 1]

    def _text(self, x, y_mid, text, fill, anchor="lm"):
        self.draw.text((round(x * self.k), round(y_mid * self.k)), text, font=self.font, fill=fill, anchor=anchor)

    def _fit(self, text, width, middle=False):
        """Clip text to width (1x) with an ellipsis, in the middle for paths as Blender does."""
        limit = width * self.k
        if self.font.getlength(text) <= limit:
            return text
        if middle:
            for cut in range(1, len(text)):
                head, tail = text[:(len(text) - cut) // 2], text[(len(text) - cut) // 2 + cut:]
                if self.font.getlength(head + "\u2026" + tail) <= limit:
                    return head + "\u2026" + tail
        while text and self.font.getlength(text + "\u2026") > limit:
            text = text[:-1]
        return text + "\u2026"

    def _tabs(self, height):
        th, x0 = self.theme, REGION_WIDTH - TAB_WIDTH
        self.draw.rectangle(self._r(x0, 0, REGION_WIDTH, height), fill=th.tab_back)
        label = "Relight"
        w = self.font.getlength(label) / self.k + 16
        self.draw.rounded_rectangle(self._r(x0 + 1, PANEL_INSET, REGION_WIDTH - 3, PANEL_INSET + w),
                                    radius=3 * self.k, fill=th.tab_active, outline=th.tab_outline, width=self.k)
        # the tab's name reads top to bottom, as in Blender's sidebar
        size = (round(w * self.k), round((TAB_WIDTH - 4) * self.k))
        strip = Image.new("RGBA", size, (0, 0, 0, 0))
        ImageDraw.Draw(strip).text((size[0] / 2, size[1] / 2), label, font=self.font, fill=th.text, anchor="mm")
        strip = strip.rotate(-90, expand=True)
        self.draw._image.paste(strip, (round((x0 + 1) * self.k), round(PANEL_INSET * self.k)), strip)

    def _paint_panel_back(self, x0, y0, x1, y1):
        r = self._radius()
        self.draw.rounded_rectangle(self._r(x0, y0, x1, y1), radius=r, fill=self.theme.panel_back)

    def _paint_sub_back(self, x0, y0, x1, y1, at_bottom):
        shade = _blend((0, 0, 0, 255), self.theme.panel_back, self.theme.sub_back[3])
        r = self._radius()
        self.draw.rounded_rectangle(self._r(x0, y0, x1, y1), radius=r, fill=shade,
                                    corners=(False, False, at_bottom, at_bottom))

    def _paint_box(self, x0, y0, x1, y1):
        wcol = self.theme.widgets["text"]
        self.draw.rounded_rectangle(self._r(x0, y0, x1, y1), radius=4 * self.k, outline=_rgb(wcol.outline),
                                    width=self.k)

    def _paint_header(self, x0, y, x1, record, is_open):
        k, th = self.k, self.theme
        if record.depth == 0:  # the sub-panel's header sits on its own darker background
            r = self._radius()
            self.draw.rounded_rectangle(self._r(x0, y, x1, y + HEADER_HEIGHT), radius=r, fill=th.panel_header)
        cx, cy, s = x0 + 13, y + HEADER_HEIGHT / 2, 3.5  # disclosure triangle
        tri = [(cx - s, cy - s * 0.6), (cx + s, cy - s * 0.6), (cx, cy + s * 0.8)] if is_open else \
              [(cx - s * 0.6, cy - s), (cx - s * 0.6, cy + s), (cx + s * 0.8, cy)]
        self.draw.polygon([(px * k, py * k) for px, py in tri], fill=_blend(th.text, th.panel_back, 0.8))
        self._text(x0 + 24, cy, record.label, th.title)
        if record.depth == 0:  # the drag grip of a top-level panel
            for gx in (x1 - 14, x1 - 10):
                for gy in (cy - 4, cy, cy + 4):
                    dot = self._r(gx - 0.9, gy - 0.9, gx + 0.9, gy + 0.9)
                    self.draw.ellipse(dot, fill=_blend(th.text, th.panel_back, 0.35))

    def _line(self, points, color, width=1.3):
        self.draw.line([(x * self.k, y * self.k) for x, y in points], fill=color, width=round(width * self.k),
                       joint="curve")

    def _dim(self, color, state):
        """Greyed out (half transparent over the panel) where a layout is disabled or inactive."""
        return color if state.get("enabled", True) else _blend(color, self.theme.panel_back, 0.5)

    def _text_color(self, wcol_name, state):
        return self._dim(_rgb(self.theme.widgets[wcol_name].text), state)

    def _widget_box(self, x0, y, x1, wcol_name, corners, state):
        wcol = self.theme.widgets[wcol_name]
        fill = _rgb(wcol.inner)
        if state.get("alert"):
            fill = _blend((200, 60, 60, 255), fill, 0.6)
        # widgets of an aligned layout touch: no gap on a side whose corners are joined
        top = y + (1 if corners[0] or corners[1] else 0)
        bottom = y + UNIT - (1 if corners[2] or corners[3] else 0)
        self.draw.rounded_rectangle(self._r(x0, top, x1, bottom), radius=self._radius(), fill=self._dim(fill, state),
                                    outline=self._dim(_rgb(wcol.outline), state), width=self.k, corners=corners)

    def _name_left(self, x0, y, x1, item, with_name, state):
        """Without property split a field's name sits left of it; returns where the field starts."""
        if not (with_name and item.text):
            return x0
        xs = x0 + (x1 - x0) * SPLIT_FACTOR
        self._text(x0, y + UNIT / 2, self._fit(item.text, xs - x0 - 6), self._text_color("tool", state))
        return xs

    def _paint_label(self, x0, y, x1, item, corners, state):
        color = self._text_color("tool", state)
        x = x0
        if item.icon == "INFO":  # the one icon a label here uses: a circled "i"
            cy = y + UNIT / 2
            self.draw.ellipse(self._r(x0 + 1, cy - 6, x0 + 13, cy + 6), outline=color, width=round(1.2 * self.k))
            self.draw.rectangle(self._r(x0 + 6.4, cy - 1.5, x0 + 7.6, cy + 3.5), fill=color)
            self.draw.rectangle(self._r(x0 + 6.4, cy - 4, x0 + 7.6, cy - 2.8), fill=color)
            x += 18
        self._text(x, y + UNIT / 2, self._fit(item.text, x1 - x), color)

    def _paint_split_name(self, x0, y, x1, text, state):
        self._text(x1, y + UNIT / 2, self._fit(text, x1 - x0), self._text_color("tool", state), anchor="rm")

    def _paint_operator(self, x0, y, x1, item, corners, state):
        self._widget_box(x0, y, x1, "tool", corners, state)
        self._text((x0 + x1) / 2, y + UNIT / 2, self._fit(item.text, x1 - x0 - 8), self._text_color("tool", state),
                   anchor="mm")

    def _paint_number(self, x0, y, x1, item, corners, with_name, state):
        color = self._text_color("num", state)
        self._widget_box(x0, y, x1, "num", corners, state)
        if with_name and item.text:  # without property split: "Name    value" inside the field
            self._text(x0 + 6, y + UNIT / 2, item.text, color)
            self._text(x1 - 6, y + UNIT / 2, item.value, color, anchor="rm")
        else:
            self._text((x0 + x1) / 2, y + UNIT / 2, item.value, color, anchor="mm")

    def _paint_text(self, x0, y, x1, item, corners, with_name, state, button=0):
        """A text field; ``button``: width of a button joined on its right."""
        x0 = self._name_left(x0, y, x1, item, with_name, state)
        tl, tr, br, bl = corners
        self._widget_box(x0, y, x1 - button, "text", (tl, tr and not button, br and not button, bl), state)
        self._text(x0 + 6, y + UNIT / 2, self._fit(item.value, x1 - button - x0 - 12, middle=item.widget == "path"),
                   self._text_color("text", state))

    def _paint_path(self, x0, y, x1, item, corners, with_name, state):
        self._paint_text(x0, y, x1, item, corners, with_name, state, button=UNIT)
        bx = x1 - UNIT  # the file browser button
        self._widget_box(bx, y, x1, "tool", (False, corners[1], corners[2], False), state)
        color = self._text_color("tool", state)
        cx, cy = bx + UNIT / 2, y + UNIT / 2  # a folder
        self.draw.rounded_rectangle(self._r(cx - 5.5, cy - 3, cx + 5.5, cy + 4.5), radius=self.k, outline=color,
                                    width=round(1.2 * self.k))
        self.draw.rectangle(self._r(cx - 5.5, cy - 4.5, cx - 1, cy - 2.5), fill=color)

    def _paint_pointer(self, x0, y, x1, item, corners, with_name, state):
        self._paint_text(x0, y, x1, item, corners, with_name, state)
        if item.value:  # the clear button of a set pointer: a small cross
            color = self._text_color("text", state)
            cx, cy, s = x1 - UNIT / 2, y + UNIT / 2, 3.2
            self._line([(cx - s, cy - s), (cx + s, cy + s)], color)
            self._line([(cx - s, cy + s), (cx + s, cy - s)], color)

    def _paint_enum(self, x0, y, x1, item, corners, with_name, state):
        x0 = self._name_left(x0, y, x1, item, with_name, state)
        color = self._text_color("menu", state)
        self._widget_box(x0, y, x1, "menu", corners, state)
        self._text(x0 + 6, y + UNIT / 2, self._fit(item.value, x1 - x0 - 26), color)
        cx, cy, s = x1 - 10, y + UNIT / 2, 3  # the drop-down chevron
        self._line([(cx - s, cy - s / 2), (cx, cy + s / 2), (cx + s, cy - s / 2)], color)

    def _paint_checkbox(self, x0, y, x1, item, corners, with_name, state):
        """Checkboxes keep their name on their right, with or without property split."""
        wcol = self.theme.widgets["option"]
        cy, s = y + UNIT / 2, 7
        fill = _rgb(wcol.inner_sel) if item.checked else _rgb(wcol.inner)
        self.draw.rounded_rectangle(self._r(x0, cy - s, x0 + 2 * s, cy + s), radius=round(3 * self.k),
                                    fill=self._dim(fill, state), outline=self._dim(_rgb(wcol.outline), state),
                                    width=self.k)
        if item.checked:
            self._line([(x0 + 3.5, cy), (x0 + 6, cy + 3), (x0 + 10.5, cy - 3)], self._text_color("option", state), 1.6)
        self._text(x0 + 2 * s + 6, cy, self._fit(item.text, x1 - x0 - 2 * s - 6), self._text_color("tool", state))


def render(records: list[PanelRecord], prefs) -> Image.Image:
    painter = Painter(Theme(prefs))
    height = painter.layout(records)
    return painter.paint(height)


# --------------------------------------------------------------------------------------------
# The add-on and a typical scene
# --------------------------------------------------------------------------------------------


def load_addon():
    """The repo's addon/ package imported as ``relight_addon``, as tests/addon/conftest.py does."""
    if ADDON_MODULE in sys.modules:
        return sys.modules[ADDON_MODULE]
    spec = importlib.util.spec_from_file_location(
        ADDON_MODULE, REPO / "addon" / "__init__.py", submodule_search_locations=[str(REPO / "addon")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[ADDON_MODULE] = module
    spec.loader.exec_module(module)
    return module


def typical_scene(addon):
    """A fresh scene set up as for a tracked EXR plate (the objects Track Plate makes, by name)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    camera = bpy.data.objects.new(addon.plate.CAMERA_NAME, bpy.data.cameras.new(addon.plate.CAMERA_NAME))
    anchor = bpy.data.objects.new(addon.plate.ANCHOR_NAME, None)
    for ob in (camera, anchor):
        scene.collection.objects.link(ob)
    scene.frame_start, scene.frame_end = 1001, 1096
    s = scene.relight
    s.plate_path = "/shots/sh010/plate.1001.exr"
    s.plate_colorspace = "ACEScg"
    s.plate_focal_mm = 50.0
    s.plate_camera, s.subject = camera, anchor
    s.light_source = "SCENE"
    s.exposure = 0.0
    s.frame_start, s.frame_end = 1001, 1096
    return scene


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "addon_panel.png")
    args = parser.parse_args(argv)
    addon = load_addon()
    addon.register()
    try:  # a Python class left registered makes bpy hang at exit
        typical_scene(addon)
        records = record_panels(relight_panels(addon), bpy.context)
        for record in records:  # Scene Export is closed by default: open it to show its fields too
            record.closed = False
        image = render(records, bpy.context.preferences)
    finally:
        addon.unregister()
    sys.path.insert(0, str(REPO))  # relight_core, for its atomic writer (imported here: the test needs only bpy)
    from relight_core.io.writers import atomic_path

    with atomic_path(args.out) as tmp:  # a flat-colour UI: 64 colours keep the PNG small
        image.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            tmp, "PNG", optimize=True)
    print(f"{args.out}: {image.width}x{image.height}, {args.out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
