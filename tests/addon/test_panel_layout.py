"""The recording draw of scripts/render_panel_layout.py (the picture in docs/BLENDER_ADDON.md) against
the real panels: every Relight panel's own draw() under bpy 4.5, recorded with its UILayout stand-in,
shows the operators and properties a user should see, named as Blender names them."""

from __future__ import annotations

import sys

import bpy
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
try:
    import render_panel_layout as rpl
finally:
    sys.path.pop(0)

OPERATORS = {"Load Plate", "Track Plate", "Preview Frame", "Light from Plate", "Extract Head Mesh",
             "Release GPU Memory"}


@pytest.fixture
def records(addon):
    rpl.typical_scene(addon)
    return {r.idname: r for r in rpl.record_panels(rpl.relight_panels(addon), bpy.context)}


def shown(record):
    """{name: item} of what a panel's draw() recorded (operators by their button text)."""
    return {item.text: item for _, item in record.body.walk() if item.widget != "separator"}


def test_every_relight_panel_is_drawn(records):
    assert [(r.label, r.depth) for r in records.values()] == [("Relight", 0), ("Plate", 1), ("Scene Export", 1)]
    assert records["RELIGHT_PT_export"].closed and not records["RELIGHT_PT_plate"].closed


def test_operators_carry_their_registered_labels(records):
    operators = {i.text for r in records.values() for _, i in r.body.walk() if i.widget == "operator"}
    assert OPERATORS <= operators
    for label in OPERATORS:  # the text is the operator's own bl_label, not something the panel typed
        assert any(getattr(cls, "bl_label", None) == label for cls in rpl.load_addon().classes)
    export = [i for _, i in records["RELIGHT_PT_export"].body.walk() if i.widget == "operator"]
    assert [(i.text, i.properties["frames"]) for i in export] == [("Export Frame", "CURRENT"),
                                                                   ("Export Range", "RANGE")]
    assert all(i.properties["filepath"] == bpy.context.scene.relight.export_path for i in export)


def test_properties_show_rna_names_and_values(records):
    main, plate = shown(records["RELIGHT_PT_main"]), shown(records["RELIGHT_PT_plate"])
    assert (main["Plate"].widget, main["Plate"].value) == ("path", "/shots/sh010/plate.1001.exr")
    assert (main["Plate Lens"].widget, main["Plate Lens"].value) == ("number", "50 mm")
    assert (main["Light Source"].widget, main["Light Source"].value) == ("enum", "Scene Lights")
    assert (main["Head"].widget, main["Head"].value) == ("pointer", "Relight Head Anchor")
    assert "Preset" not in main  # only drawn for the Preset light source
    assert main["Plate"].split and plate["Mesh Resolution"].value == "256"
    assert plate["Plate Camera"].value == "Relight Plate Camera"


def test_draw_follows_the_scene(records, addon):
    export = records["RELIGHT_PT_export"].body
    greyed = {i.text for layout, i in export.walk() if not layout.is_enabled()}
    assert greyed == {"Start", "End"}  # the custom range is off
    scene = bpy.context.scene
    scene.relight.light_source, scene.relight.preset, scene.relight.use_frame_range = "PRESET", "rim", True
    scene.render.engine = "RELIGHT"
    again = {r.idname: r for r in rpl.record_panels(rpl.relight_panels(addon), bpy.context)}
    main = shown(again["RELIGHT_PT_main"])
    assert (main["Preset"].widget, main["Preset"].value) == ("enum", "Rim")
    assert not any("Render engine" in text for text in main)
    assert all(layout.is_enabled() for layout, _ in again["RELIGHT_PT_export"].body.walk())
    assert shown(again["RELIGHT_PT_export"])["Custom Frame Range"].checked


def test_recorder_rejects_what_blender_would_not_draw(addon):
    layout = rpl.LayoutRecorder()
    with pytest.raises(AttributeError, match="no_such_setting"):
        layout.prop(bpy.context.scene.relight, "no_such_setting")
    with pytest.raises(KeyError):
        layout.operator("relight.no_such_operator")
    op = layout.operator("relight.export_scene")
    with pytest.raises(AttributeError, match="no_such_option"):
        op.no_such_option = 1


def test_painted_picture(records):
    image = rpl.render(list(records.values()), bpy.context.preferences)
    assert image.width == rpl.REGION_WIDTH * rpl.SCALE
    # the closed Scene Export panel is one header tall: opening it adds its rows
    for r in records.values():
        r.closed = False
    opened = rpl.render(list(records.values()), bpy.context.preferences)
    assert opened.height >= image.height + 8 * rpl.UNIT * rpl.SCALE
    assert len(opened.getcolors(1 << 16)) > 50  # text and widgets, not a blank region
