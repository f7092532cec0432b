#!/usr/bin/env python3
"""Derive the face-mesh triangles and vertex regions; write ``relight_core/data/face_triangles.npz``.

Usage::

    PYTHONPATH=. python scripts/make_face_triangles.py [--out relight_core/data/face_triangles.npz]
        [--preview docs/images/light_regions.png] [--portrait ../shared/data/portraits/A000014.jpg]

Input: MediaPipe 0.10.21's ``face_mesh_connections`` (the edge sets ``FACEMESH_TESSELATION``,
``FACEMESH_LEFT_EYE`` ...) and the shipped canonical face (``relight_core/data/canonical_face.npz``,
for orientation and the region polygons). Nothing else.

Steps:

1. **Triangles.** The tessellation is an edge set (1322 undirected edges on the 468 mesh points).
   Every 3-cycle of the edge graph is a candidate triangle (854). The mesh is a disk with three
   holes (the two eye openings and the mouth), so Euler's formula gives ``F = 2 - 4 + E - V =
   852`` faces: the two extra 3-cycles are "separating" triangles whose three edges each already
   border two faces; they are removed (every edge then borders 1 or 2 triangles, 88 boundary
   edges = face oval 36 + eyes 2 x 16 + inner lips 20, checked).
2. **Orientation.** Triangles are oriented consistently by a breadth-first walk over shared
   edges (a shared edge must be traversed in opposite directions), then the global sign is chosen
   so that on the canonical face (head space, +y up, +z toward the frontal camera) the
   right-hand normal ``(v1 - v0) x (v2 - v0)`` points out of the face (positive total z).
   In MediaPipe's pixel landmarks ``(x right, y down, z away)`` the same corner order gives normals
   pointing toward the camera (-z), because the y and z flips of the pixel frame cancel.
3. **Regions** (boolean masks over the 478 landmarks, mirror-symmetric by construction, made with
   the canonical face's x/y projection):

   - ``eyes``: the eyelid contours (``FACEMESH_LEFT/RIGHT_EYE``), the iris points 468-477 and the
     one-ring neighbours of the contours (eyelashes, eyeliner, the eyelid fold);
   - ``brows``: the eyebrow contours (``FACEMESH_*_EYEBROW``) and the points inside them;
   - ``lips``: the points on or inside the outer lip contour (``FACEMESH_LIPS``);
   - ``nostrils``: points below the nose tip whose canonical normal points down (the underside of
     the nose, where the nostril openings are) plus their one-ring, restricted to the nose
     (``FACEMESH_NOSE`` and the alar points);
   - ``oval``: the face outline (``FACEMESH_FACE_OVAL``): the silhouette and hairline, whose
     samples mix skin with background or hair.

Output arrays: ``triangles`` [852, 3] int32, ``eyes``/``brows``/``lips``/``nostrils``/``oval``
[478] bool, ``info`` (JSON string: counts and source versions).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter, deque
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _edges(conn) -> set[tuple[int, int]]:
    return {tuple(sorted(e)) for e in conn}


def _cycle(edges: set[tuple[int, int]]) -> list[int]:
    """Vertex order of a closed contour given as an edge set."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    if any(len(v) != 2 for v in adj.values()):
        raise ValueError("contour is not a simple cycle")
    start = min(adj)
    order, prev, cur = [start], None, start
    while True:
        nxt = [n for n in adj[cur] if n != prev][0] if prev is not None else adj[cur][0]
        if nxt == start:
            break
        order.append(nxt)
        prev, cur = cur, nxt
    return order


def _chains(edges: set[tuple[int, int]]) -> list[list[int]]:
    """Open polylines of an edge set (each vertex of degree <= 2)."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    seen: set[int] = set()
    out = []
    for s in sorted(v for v, n in adj.items() if len(n) == 1):
        if s in seen:
            continue
        chain, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [n for n in adj[cur] if n != prev]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            chain.append(cur)
            seen.add(cur)
        out.append(chain)
    return out


def _inside(poly_xy: np.ndarray, pts: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as MPath

    return MPath(poly_xy).contains_points(pts, radius=1e-9)


def build(canonical: np.ndarray, mirror: np.ndarray) -> dict:
    from mediapipe.python.solutions import face_mesh_connections as C

    E = _edges(C.FACEMESH_TESSELATION)
    adj: dict[int, set[int]] = {}
    for a, b in E:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    cand = sorted({tuple(sorted((a, b, k))) for a, b in E for k in adj[a] & adj[b]})
    count = Counter(e for t in cand for e in itertools.combinations(t, 2))
    tris = [t for t in cand if not all(count[e] == 3 for e in itertools.combinations(t, 2))]
    V = len(adj)
    expected = 2 - 4 + len(E) - V
    if len(tris) != expected:
        raise RuntimeError(f"expected {expected} faces, got {len(tris)}")
    count = Counter(e for t in tris for e in itertools.combinations(t, 2))
    if max(count.values()) > 2:
        raise RuntimeError("non-manifold edge left")
    boundary = sum(1 for v in count.values() if v == 1)

    # consistent orientation by BFS over shared edges
    edge_tris: dict[tuple[int, int], list[int]] = {}
    for i, t in enumerate(tris):
        for e in itertools.combinations(t, 2):
            edge_tris.setdefault(e, []).append(i)
    oriented: list[tuple[int, int, int] | None] = [None] * len(tris)

    def directed(t):
        return {(t[0], t[1]), (t[1], t[2]), (t[2], t[0])}

    for seed in range(len(tris)):
        if oriented[seed] is not None:
            continue
        oriented[seed] = tris[seed]
        q = deque([seed])
        while q:
            i = q.popleft()
            de = directed(oriented[i])
            for e in itertools.combinations(tris[i], 2):
                for j in edge_tris[e]:
                    if j == i or oriented[j] is not None:
                        continue
                    a, b, c = tris[j]
                    t = (a, b, c)
                    if directed(t) & de:  # same direction on the shared edge: flip
                        t = (a, c, b)
                    oriented[j] = t
                    q.append(j)
    T = np.array(oriented, dtype=np.int32)
    v = canonical
    n = np.cross(v[T[:, 1]] - v[T[:, 0]], v[T[:, 2]] - v[T[:, 0]])
    if n[:, 2].sum() < 0:
        T = T[:, [0, 2, 1]]
        n = -n
    front = float((n[:, 2] > 0).mean())

    xy = v[:, :2]
    npts = v.shape[0]

    def ring(mask: np.ndarray) -> np.ndarray:
        out = mask.copy()
        for a, b in E:
            if mask[a]:
                out[b] = True
            if mask[b]:
                out[a] = True
        return out

    def sym(mask: np.ndarray) -> np.ndarray:
        return mask | mask[mirror]

    def of(edges) -> np.ndarray:
        m = np.zeros(npts, bool)
        m[sorted({i for e in edges for i in e})] = True
        return m

    # eyes
    eye = np.zeros(npts, bool)
    for conn in (C.FACEMESH_LEFT_EYE, C.FACEMESH_RIGHT_EYE):
        cyc = _cycle(_edges(conn))
        eye[cyc] = True
        eye |= _inside(xy[cyc], xy)
    eye = ring(eye)
    eye[468:478] = True
    eye = sym(eye)
    # brows
    brow = np.zeros(npts, bool)
    for conn in (C.FACEMESH_LEFT_EYEBROW, C.FACEMESH_RIGHT_EYEBROW):
        ch = _chains(_edges(conn))
        if len(ch) != 2:
            raise RuntimeError("expected two eyebrow polylines")
        a, b = ch
        # join into a polygon: a, then b in the direction that closes it without crossing
        if np.linalg.norm(xy[a[-1]] - xy[b[0]]) > np.linalg.norm(xy[a[-1]] - xy[b[-1]]):
            b = b[::-1]
        poly = a + b
        brow[poly] = True
        brow |= _inside(xy[poly], xy)
    brow = sym(brow)
    # lips: on or inside the outer contour
    lip_edges = _edges(C.FACEMESH_LIPS)
    cycles = []
    comp_adj: dict[int, set[int]] = {}
    for a, b in lip_edges:
        comp_adj.setdefault(a, set()).add(b)
        comp_adj.setdefault(b, set()).add(a)
    seen: set[int] = set()
    for s in comp_adj:
        if s in seen:
            continue
        comp, stack = set(), [s]
        while stack:
            u = stack.pop()
            if u in comp:
                continue
            comp.add(u)
            stack.extend(comp_adj[u] - comp)
        seen |= comp
        cycles.append(_cycle({e for e in lip_edges if e[0] in comp}))
    outer = max(cycles, key=lambda c: np.ptp(xy[c, 0]))
    lip = np.zeros(npts, bool)
    lip[sorted({i for e in lip_edges for i in e})] = True
    lip |= _inside(xy[outer], xy)
    lip = sym(lip)
    # nostrils: the underside of the nose
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, T[:, k], n)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True).clip(1e-12)
    tip = v[1]
    nose = of(C.FACEMESH_NOSE)
    near = (np.abs(v[:, 0] - tip[0]) < 0.06) & (v[:, 1] < tip[1] + 0.005) & (v[:, 1] > tip[1] - 0.04)
    under = near & (vn[:, 1] < -0.35) & (v[:, 2] > tip[2] - 0.08)
    nostril = sym(ring(under) & (near | nose))
    nostril &= ~lip
    oval = sym(of(C.FACEMESH_FACE_OVAL))

    import mediapipe

    info = {
        "triangles": int(len(T)),
        "candidates_3_cycles": len(cand),
        "edges": len(E),
        "boundary_edges": boundary,
        "front_facing_share_canonical": front,
        "counts": {k: int(m.sum()) for k, m in
                   (("eyes", eye), ("brows", brow), ("lips", lip), ("nostrils", nostril), ("oval", oval))},
        "mediapipe": mediapipe.__version__,
        "script": "scripts/make_face_triangles.py",
    }
    return {"triangles": T, "eyes": eye, "brows": brow, "lips": lip, "nostrils": nostril, "oval": oval, "info": info}


def preview(data: dict, portrait: Path, out: Path) -> None:
    import cv2

    from relight_core.track.landmarks import FaceLandmarker

    img = cv2.cvtColor(cv2.imread(str(portrait)), cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    with FaceLandmarker(1, static=True) as fl:
        faces = fl(img)
    lm = faces[0].landmarks
    vis = img.copy()
    for t in data["triangles"]:
        p = lm[t, :2].round().astype(np.int32)
        cv2.polylines(vis, [p], True, (200, 200, 200), 1, cv2.LINE_AA)
    colours = {"eyes": (0, 120, 255), "brows": (255, 200, 0), "lips": (255, 0, 80), "nostrils": (0, 255, 0),
               "oval": (255, 0, 255)}
    used = np.ones(478, bool)
    for k, col in colours.items():
        used &= ~data[k]
        for i in np.nonzero(data[k])[0]:
            cv2.circle(vis, tuple(lm[i, :2].round().astype(int)), 2, col, -1, cv2.LINE_AA)
    for i in np.nonzero(used)[0]:
        cv2.circle(vis, tuple(lm[i, :2].round().astype(int)), 1, (255, 255, 255), -1, cv2.LINE_AA)
    x0, y0, x1, y1 = faces[0].box
    m = 0.1 * (x1 - x0)
    crop = vis[max(0, int(y0 - m)):int(y1 + m), max(0, int(x0 - m)):int(x1 + m)]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "relight_core" / "data" / "face_triangles.npz")
    ap.add_argument("--preview", type=Path, default=None, help="write a PNG of the regions on a portrait")
    ap.add_argument("--portrait", type=Path, default=REPO.parent / "shared" / "data" / "portraits" / "A000014.jpg")
    args = ap.parse_args()
    from relight_core.track.canonical import load_canonical_face

    face = load_canonical_face()
    data = build(face.vertices, face.mirror)
    np.savez_compressed(args.out, **{k: v for k, v in data.items() if k != "info"}, info=json.dumps(data["info"]))
    print(json.dumps(data["info"], indent=1))
    print(f"wrote {args.out}")
    if args.preview is not None:
        preview(data, args.portrait, args.preview)
        print(f"wrote {args.preview}")


if __name__ == "__main__":
    main()
