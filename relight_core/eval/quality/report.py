"""Summaries, targets, tables and contact sheets of the quality report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import metrics as M
from .identity import SAME_PERSON
from .real import FAILED_ESTIMATE

SYNTHETIC_METRICS = ("psnr_mask", "ssim_mask", "psnr_crop", "ssim_crop", "albedo_l1", "normal_deg")
TILE = 128


# ------------------------------------------------------------------------------------------
# summaries
# ------------------------------------------------------------------------------------------


def summarize_synthetic(rows: list[dict], methods: list[str]) -> dict:
    out: dict = {}
    for method in [*methods, "classical", "classical_true_light", "input_unchanged"]:
        out[method] = {}
        for view in ("input_view", "novel_view"):
            cells = [r[method][view] for r in rows if view in r.get(method, {})]
            if cells:
                out[method][view] = {k: M.summary([c.get(k) for c in cells]) for k in SYNTHETIC_METRICS if k in cells[0]}
    out["classical"]["succeeded"] = sum(bool(r["classical"]["input_view"].get("ok")) for r in rows)
    estimates = [r["estimator"] for r in rows]
    out["estimator"] = {"succeeded": sum(bool(e["ok"]) for e in estimates), "heads": len(rows),
                        "lighting_error": M.summary([e["lighting_error"] for e in estimates]),
                        "ambient_only_error": M.summary([e.get("ambient_only_error") for e in estimates])}
    return out


def _identity_cells(rows: list[dict], method: str, key: str, view: str | None) -> list[dict | None]:
    cells = []
    for r in rows:
        if not r.get("ok") or not r.get("identity_reference_found"):
            continue
        group = r[method][key]
        cells.extend(group.values() if view is None else [group[view]])
    return cells


def _identity_summary(cells: list[dict | None]) -> dict:
    distances = [c["distance"] for c in cells if c and c["distance"] is not None]
    kept = sum(d < SAME_PERSON for d in distances)
    return {"fraction_kept": kept / len(cells) if cells else math.nan, "count": len(cells),
            "distance": M.summary(distances), "fallback_boxes": sum(bool(c and not c["detected"]) for c in cells)}


def summarize_real(rows: list[dict], methods: list[str], lights: list[str]) -> dict:
    ok = [r for r in rows if r.get("ok")]
    failures = [{"file": r["file"], "reason": r["reason"]} for r in rows if not r.get("ok")]
    out: dict = {"portraits": len(rows), "usable": len(ok), "failures": failures,
                 "identity_reference_found": sum(bool(r.get("identity_reference_found")) for r in ok)}
    for method in methods:
        views = list(ok[0][method]["identity"]) if ok else []
        out[method] = {
            "psnr_face": M.summary([r[method]["psnr_face"] for r in ok]),
            "ssim_face": M.summary([r[method]["ssim_face"] for r in ok]),
            "identity": {v: _identity_summary(_identity_cells(ok, method, "identity", v)) for v in views},
            "identity_relit": _identity_summary(_identity_cells(ok, method, "identity_relit", None)),
        }
    out["classical"] = {"identity_relit": _identity_summary(_identity_cells(ok, "classical", "identity_relit", None))}
    for method in [*methods, "classical", "input_unchanged"]:
        per_light = {k: M.summary([r[method]["lighting_error"][k] for r in ok]) for k in lights}
        every = [r[method]["lighting_error"][k] for r in ok for k in lights]
        out.setdefault(method, {})["lighting_error"] = {"all": M.summary(every), **per_light,
                                                        "failed_estimates": sum(v == FAILED_ESTIMATE for v in every)}
    return out


def targets(report: dict) -> list[dict]:
    """The issue's "done when" checks that this report can decide."""
    checks = []
    syn = report.get("synthetic")
    if syn:
        s = syn["summary"]
        for metric in ("psnr_mask", "ssim_mask"):
            ours = s["trained"]["input_view"][metric]["mean"]
            others = {m: s[m]["input_view"][metric]["mean"] for m in ("untrained", "classical")}
            checks.append({"check": f"synthetic {metric} (input view, new light): trained beats both baselines",
                           "value": ours, "baselines": others, "passed": all(ours > v for v in others.values())})
            novel = s["trained"]["novel_view"][metric]["mean"]
            base = s["untrained"]["novel_view"][metric]["mean"]
            checks.append({"check": f"synthetic {metric} (novel view, new light): trained beats untrained "
                                    "(classical cannot move the camera)",
                           "value": novel, "baselines": {"untrained": base}, "passed": novel > base})
    real = report.get("real")
    if real and real["summary"]["usable"]:
        r = real["summary"]
        ours = r["trained"]["lighting_error"]["all"]["median"]
        others = {m: r[m]["lighting_error"]["all"]["median"] for m in ("untrained", "classical")}
        checks.append({"check": "real lighting error (median, all target lights): trained beats both baselines",
                       "value": ours, "baselines": others, "passed": all(ours < v for v in others.values())})
        if r["identity_reference_found"]:
            for view, need in (("input_view", 0.9), ("yaw_-20", 0.75), ("yaw_+20", 0.75)):
                frac = r["trained"]["identity"][view]["fraction_kept"]
                checks.append({"check": f"identity kept (dlib distance < {SAME_PERSON}) at {view}: at least {need:.0%}",
                               "value": frac, "passed": bool(frac >= need)})
    return checks


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------


def write_json(path: Path, report: dict) -> None:
    from ...io import write_text_atomic
    from ...passes import json_safe

    write_text_atomic(path, json.dumps(json_safe(report), indent=1, allow_nan=False))


def contact_sheet(rows: list[dict], columns: list[tuple[str, str]], path: Path, note: str = "") -> None:
    """A grid: one row per example, one labelled column per (key, title); missing tiles are grey.
    Saved atomically as JPEG (quality 88) or PNG by the file's extension."""
    from PIL import Image, ImageDraw

    from ...io import atomic_path

    header = 16
    sheet = Image.new("RGB", (TILE * len(columns), header + TILE * len(rows) + (14 if note else 0)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for col, (_, title) in enumerate(columns):
        draw.text((col * TILE + 3, 2), title, fill=(230, 230, 230))
    for r, row in enumerate(rows):
        for col, (key, _) in enumerate(columns):
            if key in row and row[key] is not None:
                tile = Image.fromarray(np.asarray(row[key], dtype=np.uint8)).resize((TILE, TILE), Image.LANCZOS)
                sheet.paste(tile, (col * TILE, header + r * TILE))
    if note:
        draw.text((3, header + TILE * len(rows) + 1), note, fill=(200, 200, 200))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG", quality=88)


SYNTHETIC_COLUMNS = [("input", "input"), ("truth", "truth (new light)"), ("trained_input_view", "trained"),
                     ("untrained_input_view", "untrained"), ("classical", "classical"), ("truth_novel", "truth, novel view"),
                     ("trained_novel_view", "trained, novel"), ("untrained_novel_view", "untrained, novel")]
REAL_COLUMNS = [("input", "input"), ("trained_reconstruction", "trained recon."), ("trained_relit", "trained relit"),
                ("untrained_relit", "untrained relit"), ("classical_relit", "classical relit"),
                ("trained_yaw_-20", "trained yaw -20"), ("trained_yaw_+20", "trained yaw +20")]
CLIP_COLUMNS = [("input", "input"), ("per_frame", "per-frame"), ("video", "video path"), ("classical", "classical")]


# ------------------------------------------------------------------------------------------
# markdown
# ------------------------------------------------------------------------------------------


def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _synthetic_md(syn: dict) -> list[str]:
    s = syn["summary"]
    lines = [f"### Synthetic held-out heads ({syn['heads']} heads, seeds {syn['seeds'][0]}...)", "",
             "Mean over heads; PSNR in dB and SSIM on display sRGB; albedo L1 linear; normal error in degrees "
             "(mean per head, then mean over heads).", "",
             "| method | view | PSNR subject | SSIM subject | PSNR crop | SSIM crop | albedo L1 | normal error |",
             "|---|---|---|---|---|---|---|---|"]
    for method, cells in s.items():
        if method == "estimator" or not isinstance(cells, dict):
            continue
        for view in ("input_view", "novel_view"):
            c = cells.get(view)
            if not c:
                continue
            get = lambda k, d=2: _f(c[k]["mean"], d) if k in c else "n/a"  # noqa: E731
            lines.append(f"| {method} | {view.replace('_', ' ')} | {get('psnr_mask')} | {get('ssim_mask', 3)} | "
                         f"{get('psnr_crop')} | {get('ssim_crop', 3)} | {get('albedo_l1', 3)} | {get('normal_deg', 1)} |")
    e = s["estimator"]
    lines += ["", f"Classical baseline: tracking and light estimate succeeded on {s['classical']['succeeded']} of "
              f"{syn['heads']} heads (the input is kept unchanged on the others).", "",
              f"Input-light estimator on these renders ({e['succeeded']} of {e['heads']} estimated): lighting error "
              f"median {_f(e['lighting_error']['median'], 3)}, mean {_f(e['lighting_error']['mean'], 3)} "
              f"(an ambient-only light scores {_f(e['ambient_only_error']['median'], 3)})."]
    return lines


def _real_md(real: dict) -> list[str]:
    r = real["summary"]
    lines = [f"### Real held-out portraits ({r['usable']} of {r['portraits']} usable; dlib found "
             f"{r['identity_reference_found']} input faces)", "",
             "| method | PSNR face (recon.) | SSIM face | identity kept: input view | yaw -20 | yaw +20 | relit, input view |",
             "|---|---|---|---|---|---|---|"]
    for method in real["methods"]:
        c = r[method]
        ident = c["identity"]
        frac = lambda v: _f(100 * v["fraction_kept"], 0) + " %" if v["count"] else "n/a"  # noqa: E731
        lines.append(f"| {method} | {_f(c['psnr_face']['mean'])} | {_f(c['ssim_face']['mean'], 3)} | "
                     f"{frac(ident['input_view'])} | {frac(ident['yaw_-20'])} | {frac(ident['yaw_+20'])} | "
                     f"{frac(c['identity_relit'])} |")
    c = r["classical"]["identity_relit"]
    lines.append(f"| classical | n/a (exact) | n/a | n/a | n/a (no view change) | n/a | "
                 f"{_f(100 * c['fraction_kept'], 0) + ' %' if c['count'] else 'n/a'} |")
    lines += ["", "Median dlib distance (input view): " + ", ".join(
        f"{m} {_f(r[m]['identity']['input_view']['distance']['median'], 3)}" for m in real["methods"]), "",
        "Lighting error of the light estimated back from the relit image (median / mean; lower is better):", "",
        "| method | all lights | " + " | ".join(real["lights"]) + " |", "|---|---|" + "---|" * len(real["lights"])]
    for method in [*real["methods"], "classical", "input_unchanged"]:
        le = r[method]["lighting_error"]
        cells = " | ".join(_f(le[k]["median"], 3) for k in real["lights"])
        lines.append(f"| {method} | {_f(le['all']['median'], 3)} / {_f(le['all']['mean'], 3)} | {cells} |")
    return lines


def _clip_md(clip: dict) -> list[str]:
    we = clip["warping_error"]
    lines = [f"### Temporal stability ({clip['frames_tracked']} tracked frames, {clip['pairs']} pairs of "
             f"{Path(clip['file']).name})", "", "| method | warping error (mean) | median |", "|---|---|---|"]
    for method, s in we.items():
        lines.append(f"| {method} | {_f(s['mean'], 5)} | {_f(s['median'], 5)} |")
    return lines


def markdown(report: dict) -> str:
    lines = ["# Quality report", "", f"Weights: {report['weights']['name']} ({report['weights']['status']}); "
             f"device {report['device']}; command: `{report['command']}`", ""]
    if report.get("synthetic"):
        lines += _synthetic_md(report["synthetic"]) + [""]
    if report.get("real"):
        lines += _real_md(report["real"]) + [""]
    if report.get("clip"):
        lines += _clip_md(report["clip"]) + [""]
    lines += ["### Targets", "", "| check | value | passed |", "|---|---|---|"]
    for t in report["targets"]:
        base = ", ".join(f"{k} {_f(v, 3)}" for k, v in t.get("baselines", {}).items())
        lines.append(f"| {t['check']} | {_f(t['value'], 3)}{' vs ' + base if base else ''} | {'yes' if t['passed'] else 'no'} |")
    return "\n".join(lines) + "\n"
