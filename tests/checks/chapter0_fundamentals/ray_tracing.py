"""Checks for 0.1 Ray tracing.

Random cases are drawn until every ray-segment or ray-triangle pair is well clear of the decision
boundaries (u = 0, v = 0, v = 1, u + v = 1, det = 0): there, two correct implementations may round
differently. The boundaries themselves are tested by hand-made cases with exactly representable numbers.
"""

import math

import einops
import torch

from solutions.chapter0_fundamentals import ray_tracing as ref
from tests.harness import Case, Checker, Exercise

INF = math.inf
MARGIN = 1e-3


def _t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ----------------------------------------------------------------------------- geometry in float64, for clean cases


def _segment_params(rays, segments):
    """det, u, v of every ray-segment pair (float64, Cramer's rule), each (nrays, nsegments)."""
    rays, segments = rays.double(), segments.double()
    O, D = rays[:, None, 0, :2], rays[:, None, 1, :2]
    L1, L2 = segments[None, :, 0, :2], segments[None, :, 1, :2]
    a, b, rhs = D, L1 - L2, L1 - O
    det = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    u = (rhs[..., 0] * b[..., 1] - rhs[..., 1] * b[..., 0]) / det
    v = (a[..., 0] * rhs[..., 1] - a[..., 1] * rhs[..., 0]) / det
    return det, u, v


def _triangle_params(rays, triangles):
    """det, s, u, v of every ray-triangle pair (float64, Cramer's rule), each (nrays, ntriangles)."""
    rays, triangles = rays.double(), triangles.double()
    O, D = rays[:, None, 0], rays[:, None, 1]
    A, B, C = triangles[None].unbind(dim=2)
    E1, E2, T = B - A, C - A, O - A
    det = torch.linalg.vecdot(-D, torch.linalg.cross(E1, E2, dim=-1))
    s = torch.linalg.vecdot(T, torch.linalg.cross(E1, E2, dim=-1)) / det
    u = torch.linalg.vecdot(-D, torch.linalg.cross(T, E2, dim=-1)) / det
    v = torch.linalg.vecdot(-D, torch.linalg.cross(E1, T, dim=-1)) / det
    return det, s, u, v


def _clear(det, *params) -> bool:
    """Whether every pair is at least MARGIN from each boundary: det = 0, every parameter = 0, and
    v = 1 (segments: params are u, v) or u + v = 1 (triangles: params are s, u, v)."""
    far_end = 1 - params[-1] if len(params) == 2 else 1 - params[-2] - params[-1]
    return all(bool(x.abs().min() > MARGIN) for x in (det, *params, far_end))


def _aimed_rays(gen, triangles: torch.Tensor, n: int) -> torch.Tensor:
    """n rays from near (-3, 0, 0), each aimed at a random point of the plane of a random one of the triangles,
    near the triangle (inside it about half the time); one in five points away from its target."""
    origins = _t(-3.0, 0.0, 0.0) + 0.3 * torch.randn(n, 3, generator=gen)
    A, B, C = triangles[torch.randint(len(triangles), (n,), generator=gen)].unbind(dim=1)
    u, v = (1.3 * torch.rand(2, n, 1, generator=gen) - 0.3).unbind(0)
    targets = A + u * (B - A) + v * (C - A)
    sign = torch.where(torch.rand(n, 1, generator=gen) < 0.2, -1.0, 1.0)
    scale = (0.5 + 1.5 * torch.rand(n, 1, generator=gen)) * sign
    return torch.stack([origins, scale * (targets - origins)], dim=1)


def _random_triangles(gen, n: int) -> torch.Tensor:
    """n triangles scattered around the origin, of size about 1, wound either way."""
    centres = 0.3 * torch.randn(n, 1, 3, generator=gen)
    return centres + torch.randn(n, 3, 3, generator=gen)


def _clean_mesh_case(gen, nrays: int, ntriangles: int, grid: bool = False):
    """Rays and triangles with no pair near a boundary (drawn again until so)."""
    while True:
        if grid:
            side = round(nrays**0.5)
            rays = ref.make_rays_2d(side, side, 0.35, 0.35)
            rays[:, 0] += _t(-3.0, 0.0, 0.0) + 0.05 * torch.randn(3, generator=gen)
        triangles = _random_triangles(gen, ntriangles)
        if not grid:
            rays = _aimed_rays(gen, triangles, nrays)
        if _clear(*_triangle_params(rays, triangles)):
            depths = ref.ray_mesh_depths(rays, triangles).sort(dim=-1).values
            # Two triangles at nearly the same depth would make "which is nearest" a matter of rounding.
            if ntriangles == 1 or not (depths[:, 1] - depths[:, 0] < MARGIN).any():
                return rays, triangles


# ----------------------------------------------------------------------------- hand-made geometry

RAY_ALONG_X = torch.stack([_t(0, 0, 0), _t(1, 0, 0)])


def _segment(x1, y1, x2, y2):
    return _t(x1, y1, 0.0), _t(x2, y2, 0.0)


# A triangle in the plane x = 2 with its right angle at A, and rays from the origin meeting it (or not). Its
# points are A + u (B - A) + v (C - A) = (2, 2u, 2v), so each ray's u and v can be read off where it meets x = 2.
TRIANGLE = torch.stack([_t(2, 0, 0), _t(2, 2, 0), _t(2, 0, 2)])
TRIANGLE_FAR = TRIANGLE + _t(2, 0, 0)  # the same triangle in the plane x = 4
NEAR_PARALLEL, SHALLOW = 2.0**-23, 2.0**-16  # the x-components of two rays at a grazing angle to the plane x = 2
HAND_RAYS = torch.stack(
    [
        torch.stack([_t(0, 0, 0), _t(1, 0.25, 0.25)]),  # hits (2, 0.5, 0.5) at u = v = 0.25
        torch.stack([_t(0, 0, 0), _t(1, 0.75, 0.75)]),  # u = v = 0.75: inside the parallelogram, outside the triangle
        torch.stack([_t(0, 0, 0), _t(-1, -0.25, -0.25)]),  # its line meets the triangle behind the origin (s = -2)
        torch.stack([_t(3, 0.25, 0.25), _t(0, 1, 0)]),  # parallel to the plane x = 2
        torch.stack([_t(0, 0, 0), _t(1, 0, 0)]),  # through the corner A (s = 2, u = v = 0)
        torch.stack([_t(0, 0, 0), _t(2, 0.5, 0.5)]),  # as the first ray, but D twice as long: s = 1
        torch.stack([_t(0, 0, 0), _t(1, 0.5, 0.5)]),  # through the middle of BC: u = v = 0.5, on the edge u + v = 1
        torch.stack([_t(2, 0.5, 0.5), _t(1, 0, 0)]),  # starts on the triangle: s = 0
        # Nearly parallel: reaches x = 2 at s = 2^23, at (2, 0.5, 1), inside the triangle, but |det| = 4 * 2^-23,
        # about 4.8e-7, is below SINGULAR_TOLERANCE: a miss.
        torch.stack([_t(1, 0.5, 1 - 2**23), _t(NEAR_PARALLEL, 0, 1)]),
        # A shallow angle, not parallel: |det| = 4 * 2^-16, about 6.1e-5, and it hits (2, 0.5, 1) at s = 2^16.
        torch.stack([_t(1, 0.5, 1 - 2**16), _t(SHALLOW, 0, 1)]),
    ]
)
HAND_HITS = torch.tensor([True, False, False, False, True, True, True, True, False, True])
HAND_DEPTHS = torch.tensor(
    [
        [2.0, 4.0],
        [INF, INF],
        [INF, INF],
        [INF, INF],
        [2.0, 4.0],
        [1.0, 2.0],
        [2.0, INF],  # in the far triangle the same ray lands at u = v = 1, outside it
        [0.0, 2.0],
        [INF, INF],
        [2.0**16, INF],
    ]
)
HAND_LABELS = [
    "hits at u = v = 0.25",
    "u = v = 0.75: inside the parallelogram on AB and AC, not the triangle",
    "the ray points away from the triangle",
    "the ray is parallel to the triangle's plane",
    "the ray passes through the corner A",
    "a longer D hits as well",
    "the ray meets the edge BC (u + v = 1 exactly)",
    "the ray starts on the triangle (s = 0)",
    "the ray is nearly parallel to the plane (|det| about 4.8e-7, below the tolerance): a miss",
    "the ray meets the plane at a shallow angle (|det| about 6.1e-5, above the tolerance): a hit",
]


# ----------------------------------------------------------------------------- cases


def _make_rays_1d_cases(gen):
    expected = torch.tensor([[[0.0, 0, 0], [1, -1, 0]], [[0, 0, 0], [1, 0, 0]], [[0, 0, 0], [1, 1, 0]]])
    yield Case((3, 1.0), "3 pixels, y_limit 1", expected=expected)
    yield Case(
        (2, 0.5),
        "2 pixels, y_limit 0.5",
        expected=torch.tensor([[[0.0, 0, 0], [1, -0.5, 0]], [[0, 0, 0], [1, 0.5, 0]]]),
    )
    yield Case((9, 10.0), "9 pixels, y_limit 10")
    for _ in range(3):
        num_pixels = int(torch.randint(2, 40, (), generator=gen))
        yield Case((num_pixels, round(float(torch.rand((), generator=gen)) * 5 + 0.1, 3)), "random size and limit")


def _intersect_ray_1d_cases(gen):
    hand = [
        (_segment(2, -1, 2, 1), True, "a segment straight ahead"),
        (_segment(-2, -1, -2, 1), False, "a segment behind the ray's origin"),
        (_segment(2, 0.5, 2, 2), False, "a segment beside the ray: its line is hit at v < 0"),
        (_segment(2, -2, 2, -0.5), False, "a segment beside the ray: its line is hit at v > 1"),
        (_segment(2, 0, 2, 2), True, "the ray passes through an endpoint (v = 0)"),
        (_segment(2, -2, 2, 0), True, "the ray passes through an endpoint (v = 1)"),
        (_segment(1, 1, 3, 1), False, "a parallel segment"),
        (_segment(1, 0, 3, 0), False, "a segment on the ray's own line (parallel: counts as a miss)"),
        (_segment(0, -1, 0, 1), True, "the ray starts on the segment (u = 0)"),
        # The ray would cross both of these at their midpoints (u = 2, v = 0.5); det = -2 * (their rise).
        (_segment(1, -(2**-23), 3, 2**-23), False, "a nearly parallel segment (|det| 2.4e-7, below the tolerance)"),
        (_segment(1, -(2**-17), 3, 2**-17), True, "a segment at a shallow angle (|det| 1.5e-5, above the tolerance)"),
    ]
    for number, ((L1, L2), hit, label) in enumerate(hand):
        yield Case((RAY_ALONG_X, torch.stack([L1, L2])), label, expected=hit)
        if number == 0:  # early, so that a matrix built the wrong way round fails here, with nothing else in play
            ray = torch.stack([_t(1, 1, 0), _t(1, 1, 0)])
            segment = torch.stack(_segment(0, 3, 3, 0))
            yield Case((ray, segment), "an oblique ray meets the segment's midpoint", expected=True)
    ray_with_z = torch.stack([_t(0, 0, 5), _t(1, 0, -3)])
    yield Case((ray_with_z, torch.stack(_segment(2, -1, 2, 1))), "z coordinates are ignored", expected=True)
    found = 0
    while found < 12:
        segment = torch.randn(2, 3, generator=gen) * _t(1, 1, 0)
        origin = torch.randn(3, generator=gen) * _t(1, 1, 0)
        v = 2 * float(torch.rand((), generator=gen)) - 0.5  # the ray's line meets the segment's line here
        target = segment[0] + v * (segment[1] - segment[0])
        sign = -1.0 if float(torch.rand((), generator=gen)) < 0.2 else 1.0
        ray = torch.stack([origin, sign * (target - origin)])
        if _clear(*_segment_params(ray[None], segment[None])):
            found += 1
            yield Case((ray, segment), "random ray and segment")


def _boundary_segments():
    """Rays that each meet one segment, exactly on a boundary of the conditions or at a grazing angle."""

    def ray(ox, oy, dx, dy):
        return torch.stack([_t(ox, oy, 0), _t(dx, dy, 0)])

    rays = torch.stack(
        [
            ray(0, 0, 1, 0),  # meets nothing
            ray(0, 0, 1, 1),  # meets the first segment at its end L2 (v = 1)
            ray(0, 5, 1, 0),  # starts on the second segment (u = 0)
            ray(0, 0.5, 1, 0),  # crosses the third, nearly parallel: |det| = 2^-22, below the tolerance, so a miss
            ray(0, 0, 1, -1),  # meets the fourth at its start L1 (v = 0)
            ray(0, 0.25, 1, 0),  # crosses the fifth at a shallow angle: |det| = 2^-16, above the tolerance, so a hit
        ]
    )
    ends = [
        (2, 1, 2, 2),
        (0, 4, 0, 6),
        (1, 0.5 - 2**-23, 3, 0.5 + 2**-23),
        (3, -3, 3, -5),
        (1, 0.25 - 2**-17, 3, 0.25 + 2**-17),
    ]
    segments = torch.stack([torch.stack(_segment(*e)) for e in ends])
    return rays, segments


def _intersect_rays_1d_cases(gen):
    rays = ref.make_rays_1d(3, 1.0)  # directions (1, -1), (1, 0), (1, 1)
    segments = torch.stack(
        [
            torch.stack(_segment(2, 1, 2, 3)),  # met by the third ray at (2, 2)
            torch.stack(_segment(-1, -2, -1, 2)),  # behind every ray
            torch.stack(_segment(1, 0.5, 3, 0.5)),  # parallel to the second ray, beside it
        ]
    )
    yield Case((rays, segments), "3 rays, 3 hand-made segments", expected=torch.tensor([False, False, True]))
    yield Case((rays, segments[1:]), "3 rays, no segment hit", expected=torch.tensor([False, False, False]))
    yield Case(
        _boundary_segments(),
        "6 rays, 5 segments, each hit only on a boundary (u = 0, v = 0 or 1) or at a grazing angle",
        expected=torch.tensor([False, True, True, False, True, True]),
    )
    for nrays, nsegments in [(7, 4), (5, 9), (1, 3), (6, 1)]:
        while True:
            rays = torch.randn(nrays, 2, 3, generator=gen) * _t(1, 1, 0)
            segments = torch.randn(nsegments, 2, 3, generator=gen) * _t(1, 1, 0)
            if _clear(*_segment_params(rays, segments)):
                break
        yield Case((rays, segments), f"{nrays} random rays, {nsegments} random segments")


def _make_rays_2d_cases(gen):
    directions = torch.tensor([[1.0, -1, -2], [1, -1, 0], [1, -1, 2], [1, 1, -2], [1, 1, 0], [1, 1, 2]])
    expected = torch.stack([torch.zeros(6, 3), directions], dim=1)
    yield Case((2, 3, 1.0, 2.0), "2 x 3 pixels, limits 1 and 2", expected=expected)
    yield Case((4, 5, 0.3, 0.7), "4 x 5 pixels")
    yield Case((10, 10, 0.3, 0.3), "10 x 10 pixels")
    for _ in range(2):
        ny, nz = (int(n) for n in torch.randint(2, 20, (2,), generator=gen))
        y_limit, z_limit = (round(float(x), 3) for x in torch.rand(2, generator=gen) + 0.1)
        yield Case((ny, nz, y_limit, z_limit), "random sizes and limits")


def _triangle_ray_intersects_cases(gen):
    A, B, C = TRIANGLE
    for number, ((O, D), hit, label) in enumerate(zip(HAND_RAYS, HAND_HITS.tolist(), HAND_LABELS, strict=True)):
        yield Case((A, B, C, O, D), label, expected=hit)
        if number == 0:  # early, so that a matrix built the wrong way round fails here, with nothing else in play
            yield Case(
                (A, B, C, _t(0, -0.5, -0.5), _t(1, 0.5, 0.5)),
                "a slanting ray from off the axis hits at u = v = 0.25",
                expected=True,
            )
    yield Case((A, B, C, _t(4, 0.5, 0.5), _t(-1, 0, 0)), "hit from the far side", expected=True)
    found = 0
    while found < 12:
        triangles = _random_triangles(gen, 1)
        rays = _aimed_rays(gen, triangles, 1)
        if _clear(*_triangle_params(rays, triangles)):
            found += 1
            yield Case((*triangles[0], *rays[0]), "random triangle and ray")


def _raytrace_triangle_cases(gen):
    yield Case((HAND_RAYS, TRIANGLE), "10 hand-made rays: hits, misses, boundaries, grazing angles", expected=HAND_HITS)
    for nrays, grid in [(64, True), (100, True), (9, False)]:
        rays, triangles = _clean_mesh_case(gen, nrays, 1, grid)
        yield Case((rays, triangles[0]), f"{nrays} {'screen' if grid else 'random'} rays, a random triangle")


def _random_mesh_cases(gen):
    for nrays, ntriangles, grid in [(36, 5, True), (12, 7, False), (5, 1, False)]:
        rays, triangles = _clean_mesh_case(gen, nrays, ntriangles, grid)
        yield Case((rays, triangles), f"{nrays} rays, {ntriangles} random triangles")


def _ray_mesh_depths_cases(gen):
    yield Case(
        (HAND_RAYS, torch.stack([TRIANGLE, TRIANGLE_FAR])),
        "hand-made rays, the triangle at x = 2 and x = 4",
        expected=HAND_DEPTHS,
    )
    yield from _random_mesh_cases(gen)


def _closed_form_cases(gen):
    # The same triangles wound both ways: listing the corners the other way round flips every determinant's sign.
    both = torch.stack([TRIANGLE, TRIANGLE_FAR])
    yield Case(
        (HAND_RAYS, both.flip(dims=[1])),
        "hand-made rays, the triangle at x = 2 and x = 4, corners C, B, A",
        expected=HAND_DEPTHS,
    )
    yield Case(
        (HAND_RAYS, both),
        "the same triangles with corners A, B, C: every determinant changes sign",
        expected=HAND_DEPTHS,
    )
    yield from _random_mesh_cases(gen)


def _no_solver(impl):
    """Run impl with torch's solvers, determinants and inverses switched off: the exercise is to do without."""
    banned = [(torch.linalg, name) for name in ("solve", "solve_ex", "det", "inv", "inv_ex", "pinv", "lstsq")]
    banned += [(torch, "det"), (torch, "inverse"), (torch.Tensor, "det"), (torch.Tensor, "inverse")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in banned]

    def refuse(*args, **kwargs):
        raise AssertionError("it calls a solver, determinant or inverse from torch: write the closed form instead")

    try:
        for owner, name in banned:
            setattr(owner, name, refuse)
        impl(HAND_RAYS, TRIANGLE[None])
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _raytrace_mesh_cases(gen):
    # The nearest triangle comes last, and the first one hit is not the farthest, so each wrong choice shows.
    mesh = torch.stack([TRIANGLE + _t(1, 0, 0), TRIANGLE_FAR, TRIANGLE])
    yield Case((HAND_RAYS, mesh), "hand-made rays, the triangle at x = 3, 4 and 2", expected=HAND_DEPTHS[:, 0])
    # More triangles than rays, the nearest listed last: copies of TRIANGLE at x = 13, 12, ..., 2.
    stack = TRIANGLE + torch.arange(11.0, -1.0, -1.0)[:, None, None] * _t(1, 0, 0)
    rays = torch.stack(
        [
            torch.stack([_t(0, 0.5, 0.5), _t(1, 0, 0)]),  # meets every copy at u = v = 0.25; the nearest at depth 2
            torch.stack([_t(-1, 0.25, 0.5), _t(2, 0, 0)]),  # the same with D twice as long: (2 + 1) / 2
            torch.stack([_t(0, 3, 3), _t(1, 0, 0)]),  # passes beside them all
            torch.stack([_t(5.5, 0.5, 0.5), _t(1, 0, 0)]),  # starts among them: the copies behind it do not count
        ]
    )
    yield Case(
        (rays, stack), "4 rays, 12 triangles, the nearest listed last", expected=torch.tensor([2.0, 1.5, INF, 0.5])
    )
    for nrays, ntriangles, grid in [(36, 6, True), (64, 4, True), (10, 8, False)]:
        rays, triangles = _clean_mesh_case(gen, nrays, ntriangles, grid)
        yield Case((rays, triangles), f"{nrays} rays, {ntriangles} random triangles")


def _rotation_matrix_y_cases(gen):
    yield Case((0.0,), "no rotation", expected=torch.eye(3))
    yield Case(
        (math.pi / 2,), "a quarter turn: z -> x, x -> -z", expected=torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    )
    yield Case((math.pi,), "a half turn", expected=torch.tensor([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]]))
    for theta in (2 * torch.rand(4, generator=gen) - 1) * 2 * math.pi:
        yield Case((float(theta),), "random angle")


def _render_rotating_cases(gen):
    # A triangle in the plane x = 1 around the x-axis, seen along the x-axis from (-3, 0, 0). A quarter turn
    # about y puts it edge-on (a miss), a half turn mirrors it into the plane x = -1 (depth 2).
    ray = torch.stack([_t(-3, 0, 0), _t(1, 0, 0)])[None]
    triangle = torch.stack([_t(1, -1, -1), _t(1, -1, 2), _t(1, 2, -1)])[None]
    yield Case(
        (ray, triangle, 4), "one ray, one triangle, 4 frames", expected=torch.tensor([[4.0], [INF], [2.0], [INF]])
    )
    for nrays, ntriangles, frames in [(36, 4, 5), (16, 3, 3)]:
        while True:
            rays, triangles = _clean_mesh_case(gen, nrays, ntriangles, grid=True)
            turns = [ref.rotation_matrix_y(2 * math.pi * k / frames) for k in range(frames)]
            if all(_clear(*_triangle_params(rays, triangles @ r.T)) for r in turns):
                break
        yield Case((rays, triangles, frames), f"{nrays} screen rays, {ntriangles} random triangles, {frames} frames")


def _triangle_normals_cases(gen):
    triangles = torch.stack(
        [
            torch.stack([_t(0, 0, 0), _t(1, 0, 0), _t(0, 1, 0)]),  # (1, 0, 0) x (0, 1, 0) = (0, 0, 1)
            torch.stack([_t(0, 0, 0), _t(0, 0, 2), _t(0, 3, 0)]),  # (0, 0, 2) x (0, 3, 0) = (-6, 0, 0)
            torch.stack([_t(1, 1, 1), _t(1, 1, 4), _t(1, 5, 1)]),  # the same as the last, moved and stretched
        ]
    )
    yield Case((triangles,), "three hand-made triangles", expected=torch.tensor([[0.0, 0, 1], [-1, 0, 0], [-1, 0, 0]]))
    # Sides of 1/1024: the cross product has length 2^-20, about 1e-6, and the normal still has length 1.
    tiny = torch.stack([_t(1, 1, 1), _t(1 + 2**-10, 1, 1), _t(1, 1 + 2**-10, 1)])
    yield Case(
        (torch.stack([tiny, tiny.flip(dims=[0])]),),
        "a tiny triangle (sides 1/1024), wound both ways",
        expected=torch.tensor([[0.0, 0, 1], [0, 0, -1]]),
    )
    yield Case((_random_triangles(gen, 9),), "9 random triangles")
    yield Case((ref.make_torus(1.0, 0.3, 6, 4),), "a small torus")


def _shade_lambert_cases(gen):
    # The triangle in the plane x = 2 faces the camera at the origin with the normal (-1, 0, 0).
    rays = HAND_RAYS[[0, 1]]  # a hit and a miss
    mesh = TRIANGLE[None]
    yield Case((rays, mesh, _t(-2, 0, 0)), "light from the camera's side, square on", expected=torch.tensor([1.0, 0.0]))
    yield Case((rays, mesh, _t(-1, 1, 0)), "light at 45 degrees", expected=torch.tensor([math.sqrt(0.5), 0.0]))
    yield Case((rays, mesh, _t(3, 0, 0)), "light behind the triangle", expected=torch.tensor([0.0, 0.0]))
    yield Case(
        (rays, mesh.flip(dims=[1]), _t(-1, 1, 0)),
        "the same, wound the other way",
        expected=torch.tensor([math.sqrt(0.5), 0.0]),
    )
    for nrays, ntriangles in [(36, 6), (64, 3)]:
        rays, triangles = _clean_mesh_case(gen, nrays, ntriangles, grid=True)
        light = torch.randn(3, generator=gen)
        yield Case((rays, triangles, light), f"{nrays} screen rays, {ntriangles} random triangles")


# An occluder in the plane x = 1 that hides the point (2, 0.5, 0.5) of TRIANGLE from a light along -x (the shadow ray
# meets it at u = v = 0.25, distance 1), but not from a light at 45 degrees (that shadow ray passes it at y = 1.5).
OCCLUDER = torch.stack([_t(1, 0.4, 0.4), _t(1, 0.8, 0.4), _t(1, 0.4, 0.8)])
SHADOW_RAYS = torch.stack(
    [
        HAND_RAYS[0],  # meets TRIANGLE at (2, 0.5, 0.5), exactly: its shadow ray starts exactly on TRIANGLE
        HAND_RAYS[1],  # meets nothing
        HAND_RAYS[6],  # meets OCCLUDER at (1, 0.5, 0.5), else TRIANGLE's edge at (2, 1, 1); nothing beyond either
    ]
)


def _stable_rays(fn, rays, triangles, light, gen, jitter=1e-3, tries=6):
    """The rays whose answer barely moves when rays and light are jittered: none of them is near a shadow's
    edge, a triangle's edge or a grazing angle, where two correct implementations may round differently."""
    base = fn(rays, triangles, light)
    keep = torch.ones(len(rays), dtype=torch.bool)
    for _ in range(tries):
        moved = fn(
            rays + jitter * torch.randn(rays.shape, generator=gen),
            triangles,
            light + jitter * light.norm() * torch.randn(3, generator=gen),
        )
        keep &= (moved - base).abs() < 0.05
    return rays[keep]


def _shade_with_shadows_cases(gen):
    scene = torch.stack([TRIANGLE, OCCLUDER])
    yield Case(
        (SHADOW_RAYS, TRIANGLE[None], _t(-1, 0, 0)),
        "nothing in the way: the shadow ray starts on the triangle it leaves",
        expected=torch.tensor([1.0, 0.0, 1.0]),
    )
    yield Case(
        (SHADOW_RAYS, scene, _t(-1, 0, 0)),
        "an occluder between the triangle and a light along -x",
        expected=torch.tensor([0.0, 0.0, 1.0]),
    )
    yield Case(
        (SHADOW_RAYS, scene, _t(-1, 1, 0)),
        "the light at 45 degrees: the shadow ray passes the occluder",
        expected=torch.tensor([math.sqrt(0.5), 0.0, math.sqrt(0.5)]),
    )
    yield Case(
        (SHADOW_RAYS, torch.stack([TRIANGLE, TRIANGLE_FAR]), _t(-1, 0, 0)),
        "a triangle behind the lit one, away from the light",
        expected=torch.tensor([1.0, 0.0, 1.0]),
    )
    yield Case(
        (SHADOW_RAYS, scene, _t(-4, 0, 0), 0.5),
        "a light vector of length 4, the occluder 1 away, bias 0.5",
        expected=torch.tensor([0.0, 0.0, 1.0]),
    )
    yield Case(
        (SHADOW_RAYS, scene, _t(-1, 0, 0), 1.5),
        "the occluder 1 away, within a bias of 1.5: it does not count",
        expected=torch.tensor([1.0, 0.0, 1.0]),
    )
    # A small torus in front of a wall, lit from random directions on the camera's side.
    wall = torch.stack(
        [
            torch.stack([_t(1.5, -3, -3), _t(1.5, 3, -3), _t(1.5, -3, 3)]),
            torch.stack([_t(1.5, 3, 3), _t(1.5, -3, 3), _t(1.5, 3, -3)]),
        ]
    )
    torus_and_wall = torch.cat([ref.make_torus(1.0, 0.4, 8, 6), wall])
    for side in (10, 12):
        rays = ref.make_rays_2d(side, side, 0.5, 0.5)
        rays[:, 0] = _t(-3.0, 0.0, 0.0)
        light = torch.randn(3, generator=gen) - _t(2.0, 0.0, 0.0)
        rays = _stable_rays(ref.shade_with_shadows, rays, torus_and_wall, light, gen)
        yield Case((rays, torus_and_wall, light), f"{len(rays)} screen rays, a small torus in front of a wall")


# ----------------------------------------------------------------------------- realistic wrong implementations


def _rays_1d_arange(num_pixels, y_limit):
    rays = torch.zeros(num_pixels, 2, 3)
    rays[:, 1, 0] = 1
    rays[:, 1, 1] = -y_limit + 2 * y_limit * torch.arange(num_pixels) / num_pixels
    return rays


def _rays_1d_z_axis(num_pixels, y_limit):
    return ref.make_rays_1d(num_pixels, y_limit)[..., [0, 2, 1]]


def _segment_hits(rays, segments, mistake=""):
    """(nrays, nsegments) hits by batched solve, as a learner would write it, optionally with one mistake:
    "no u", "no v", "strict u", "open v" (the conditions); "unguarded", "unmasked", "exact det", "big tolerance",
    "signed det" (the singular systems); "rows" (the matrix)."""
    O, D = rays[:, None, 0, :2], rays[:, None, 1, :2]
    L1, L2 = segments[None, :, 0, :2], segments[None, :, 1, :2]
    mat = torch.stack(torch.broadcast_tensors(D, L1 - L2), dim=-2 if mistake == "rows" else -1)
    det = torch.linalg.det(mat)
    singular = {"exact det": det == 0, "big tolerance": det.abs() < 1e-4, "signed det": det < 1e-6}.get(
        mistake, det.abs() < 1e-6
    )
    if mistake == "unguarded":
        singular = torch.zeros_like(singular)
    else:
        mat = torch.where(singular[..., None, None], torch.eye(2), mat)
    u, v = torch.linalg.solve(mat, (L1 - O).expand(*mat.shape[:-1])).unbind(-1)
    in_front = {"no u": torch.ones_like(singular), "strict u": u > 0}.get(mistake, u >= 0)
    between = {"no v": torch.ones_like(singular), "open v": (v > 0) & (v < 1)}.get(mistake, (v >= 0) & (v <= 1))
    return in_front & between & (~singular if mistake != "unmasked" else True)


def _one_segment(mistake):
    return lambda ray, segment: bool(_segment_hits(ray[None], segment[None], mistake)[0, 0])


def _any_segment(mistake="", dim=-1):
    return lambda rays, segments: _segment_hits(rays, segments, mistake).any(dim=dim)


def _rays_2d_z_major(num_pixels_y, num_pixels_z, y_limit, z_limit):
    rays = ref.make_rays_2d(num_pixels_y, num_pixels_z, y_limit, z_limit)
    return einops.rearrange(rays, "(y z) p d -> (z y) p d", y=num_pixels_y)


def _rays_2d_swapped_limits(num_pixels_y, num_pixels_z, y_limit, z_limit):
    return ref.make_rays_2d(num_pixels_y, num_pixels_z, z_limit, y_limit)


def _triangle_solve(rays, triangles, mistake=""):
    """(hit, s) for every ray-triangle pair by batched solve, as a learner would write it, optionally with one
    mistake: "no s", "no sum", "strict s", "strict sum" (the conditions); "unmasked", "exact det",
    "big tolerance" (the singular systems); "rows" (the matrix)."""
    O, D = rays[:, None, 0], rays[:, None, 1]
    A, B, C = triangles[None].unbind(dim=2)
    mat = torch.stack(torch.broadcast_tensors(-D, B - A, C - A), dim=-2 if mistake == "rows" else -1)
    det = torch.linalg.det(mat)
    singular = {"exact det": det == 0, "big tolerance": det.abs() < 1e-4}.get(mistake, det.abs() < 1e-6)
    mat = torch.where(singular[..., None, None], torch.eye(3), mat)
    s, u, v = torch.linalg.solve(mat, (O - A).expand(*mat.shape[:-1])).unbind(-1)
    in_front = {"no s": torch.ones_like(singular), "strict s": s > 0}.get(mistake, s >= 0)
    below = {"no sum": torch.ones_like(singular), "strict sum": u + v < 1}.get(mistake, u + v <= 1)
    hit = in_front & (u >= 0) & (v >= 0) & below & (~singular if mistake != "unmasked" else True)
    return hit, s


def _single(mistake):
    def intersects(A, B, C, O, D):
        hit, _ = _triangle_solve(torch.stack([O, D])[None], torch.stack([A, B, C])[None], mistake)
        return bool(hit[0, 0])

    return intersects


def _traced(mistake):
    return lambda rays, triangle: _triangle_solve(rays, triangle[None], mistake)[0][:, 0]


def _mesh_depths(mistake="", miss=INF, distance=False):
    def depths(rays, triangles):
        hit, s = _triangle_solve(rays, triangles, mistake)
        return torch.where(hit, s * rays[:, None, 1].norm(dim=-1) if distance else s, miss)

    return depths


def _closed_form(mistake=""):
    """Cramer's rule as a learner would write it, with one mistake: "abs det", "cross order", "exact det",
    "signed det" or "no sum"."""

    def depths(rays, triangles):
        O, D = rays[:, None, 0], rays[:, None, 1]
        A, B, C = triangles[None].unbind(dim=2)
        E1, E2, T = B - A, C - A, O - A
        P = torch.linalg.cross(D, E2, dim=-1)
        Q = torch.linalg.cross(E1, T, dim=-1) if mistake == "cross order" else torch.linalg.cross(T, E1, dim=-1)
        det = (E1 * P).sum(dim=-1)
        singular = {"exact det": det == 0, "signed det": det < 1e-6}.get(mistake, det.abs() < 1e-6)
        det = torch.where(singular, 1.0, det.abs() if mistake == "abs det" else det)
        s, u, v = (E2 * Q).sum(dim=-1) / det, (T * P).sum(dim=-1) / det, (D * Q).sum(dim=-1) / det
        below = torch.ones_like(singular) if mistake == "no sum" else u + v <= 1
        return torch.where((s >= 0) & (u >= 0) & (v >= 0) & below & ~singular, s, INF)

    return depths


def _first_hit(rays, triangles):
    depths = ref.ray_mesh_depths(rays, triangles)
    first = depths.isfinite().to(torch.int8).argmax(dim=-1)
    return depths.gather(-1, first[:, None])[:, 0]


def _chunks_bounded_by_rays(rays, triangles, chunk=2):
    # Chunked as the notebook suggests for big meshes, but the loop runs to len(rays): with fewer triangles than
    # rays the extra chunks are empty and harmless; with more, the later triangles are never looked at.
    depths = [ref.ray_mesh_depths(rays, triangles[start : start + chunk]) for start in range(0, len(rays), chunk)]
    return torch.cat(depths, dim=-1).min(dim=-1).values


def _farthest_hit(rays, triangles):
    depths = ref.ray_mesh_depths(rays, triangles)
    farthest = depths.nan_to_num(posinf=-1.0).max(dim=-1).values
    return torch.where(farthest < 0, INF, farthest)


def _rotation_transposed(theta):
    return ref.rotation_matrix_y(theta).T


def _rotation_about_z(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _render_rotating(angles, inverse=False):
    def render(rays, triangles, num_frames):
        frames = []
        for theta in angles(num_frames):
            rotation = ref.rotation_matrix_y(float(theta))
            frames.append(ref.raytrace_mesh(rays, triangles @ (rotation if inverse else rotation.T)))
        return torch.stack(frames)

    return render


def _normals(order=1, normalise=True, norm_dim=-1, eps=0.0):
    def normals(triangles):
        A, B, C = triangles.unbind(dim=1)
        n = torch.linalg.cross(B - A, C - A, dim=-1) * order
        return n / (n.norm(dim=norm_dim, keepdim=True) + eps) if normalise else n

    return normals


def _shade(clamp=True, normalise_light=True, face_camera=True, zero_misses=True, two_sided=False):
    def shade(rays, triangles, light):
        depths = ref.ray_mesh_depths(rays, triangles)
        nearest = depths.argmin(dim=-1)
        hit = depths.min(dim=-1).values.isfinite()
        normals = ref.triangle_normals(triangles)[nearest]
        if face_camera:
            away = (normals * rays[:, 1]).sum(-1) > 0
            normals = torch.where(away[:, None], -normals, normals)
        brightness = normals @ (light / light.norm() if normalise_light else light)
        brightness = brightness.abs() if two_sided else brightness.clamp(min=0) if clamp else brightness
        return torch.where(hit, brightness, 0.0) if zero_misses else brightness

    return shade


def _shadowed(origin="hit", direction=1.0, normalise=True, fixed_bias=False, acne=False, misses_block=False):
    def shade(rays, triangles, light, bias=ref.SHADOW_BIAS):
        depth = ref.raytrace_mesh(rays, triangles)
        hit = depth.isfinite()
        points = rays[:, 0] + torch.where(hit, depth, 0.0)[:, None] * rays[:, 1]
        starts = rays[:, 0] if origin == "camera" else points
        towards = direction * (light / light.norm() if normalise else light)
        shadow = ref.ray_mesh_depths(torch.stack([starts, towards.expand_as(starts)], dim=1), triangles)
        beyond = shadow > (ref.SHADOW_BIAS if fixed_bias else bias)
        blocked = shadow.isfinite() if acne else beyond if misses_block else shadow.isfinite() & beyond
        return torch.where(blocked.any(dim=-1), 0.0, ref.shade_lambert(rays, triangles, light))

    return shade


check = Checker(
    "0.1",
    [
        Exercise(
            ref.make_rays_1d,
            _make_rays_1d_cases,
            hint="look at the first and last rays: their directions should pass through y = -y_limit and "
            "y = y_limit exactly. Every origin is the camera, and every direction has x = 1 and z = 0.",
            wrong={
                "the last ray stops one step short of y_limit (spacing as if there were num_pixels + 1 rays)": (
                    _rays_1d_arange
                ),
                "the y values written into the z coordinate": _rays_1d_z_axis,
            },
        ),
        Exercise(
            ref.intersect_ray_1d,
            _intersect_ray_1d_cases,
            hint="three questions decide it, using x and y only. Are the lines parallel or nearly so (the size of "
            "the determinant against SINGULAR_TOLERANCE, before solving)? Is the meeting point in front of the "
            "ray's origin or on it (u)? Is it between the segment's endpoints, the endpoints included (v)?",
            wrong={
                "a ray that starts on the segment (u = 0) counted as a miss": _one_segment("strict u"),
                "an endpoint of the segment (v = 0 or v = 1) counted as a miss": _one_segment("open v"),
                "only an exactly zero determinant treated as parallel, not a tiny one": _one_segment("exact det"),
                "a tolerance far above SINGULAR_TOLERANCE: a shallow-angle hit treated as parallel": _one_segment(
                    "big tolerance"
                ),
                "the determinant compared with the tolerance without its absolute value": _one_segment("signed det"),
                "segments behind the ray's origin counted (no condition on u)": _one_segment("no u"),
                "points of the segment's line beyond its endpoints counted (no bounds on v)": _one_segment("no v"),
                "D and L1 - L2 stacked as the matrix's rows, not its columns": _one_segment("rows"),
                "no test for parallel lines before solving": _one_segment("unguarded"),
            },
        ),
        Exercise(
            ref.intersect_rays_1d,
            _intersect_rays_1d_cases,
            hint="one answer per ray: does it meet any segment, so reduce over the segments axis. A pair whose "
            "system is singular or nearly so is never a hit, whatever the solver returns for it. A ray that "
            "starts on a segment, or passes through an endpoint, hits it.",
            wrong={
                "a ray that starts on a segment (u = 0) counted as a miss": _any_segment("strict u"),
                "endpoints of segments (v = 0 or v = 1) counted as misses": _any_segment("open v"),
                "only exactly zero determinants treated as parallel, not tiny ones": _any_segment("exact det"),
                "a tolerance far above SINGULAR_TOLERANCE: shallow-angle hits treated as parallel": _any_segment(
                    "big tolerance"
                ),
                "singular systems swapped for the identity but their answers not masked out": _any_segment("unmasked"),
                "singular systems passed to solve as they are": _any_segment("unguarded"),
                "segments behind the rays' origins counted (no condition on u)": _any_segment("no u"),
                "reduced over the rays axis instead of the segments axis": _any_segment(dim=0),
            },
        ),
        Exercise(
            ref.make_rays_2d,
            _make_rays_2d_cases,
            hint="which ray is which: ray y_index * num_pixels_z + z_index goes through the y_index-th y and the "
            "z_index-th z, so z changes fastest down the list. Work out rays 0, 1 and num_pixels_z of a small "
            "grid by hand and compare.",
            wrong={
                "the rays listed with y changing fastest, not z": _rays_2d_z_major,
                "y_limit and z_limit swapped": _rays_2d_swapped_limits,
            },
        ),
        Exercise(
            ref.triangle_ray_intersects,
            _triangle_ray_intersects_cases,
            hint="is each vector a column of the matrix, in the order (s, u, v) is solved for? Are all four "
            "conditions on s, u and v there, with the boundaries counted as hits (a ray that starts on the "
            "triangle, or meets an edge)? Is a ray parallel or nearly parallel to the plane a miss?",
            wrong={
                "a ray that meets the edge BC (u + v = 1) counted as a miss": _single("strict sum"),
                "a ray that starts on the triangle (s = 0) counted as a miss": _single("strict s"),
                "only an exactly zero determinant treated as parallel, not a tiny one": _single("exact det"),
                "a tolerance far above SINGULAR_TOLERANCE: a shallow-angle hit treated as parallel": _single(
                    "big tolerance"
                ),
                "the whole parallelogram counted, not the triangle (no condition on u + v)": _single("no sum"),
                "triangles behind the ray's origin counted (no condition on s)": _single("no s"),
                "-D, B - A and C - A stacked as the matrix's rows, not its columns": _single("rows"),
                "a singular system's meaningless solution used as a hit": _single("unmasked"),
            },
        ),
        Exercise(
            ref.raytrace_triangle,
            _raytrace_triangle_cases,
            hint="as for one ray, with a leading axis for the rays: a singular or nearly singular system is a miss, "
            "and it must not reach the solver as it is; boundaries (s = 0, an edge) count as hits.",
            wrong={
                "rays that meet the edge BC (u + v = 1) counted as misses": _traced("strict sum"),
                "a ray that starts on the triangle (s = 0) counted as a miss": _traced("strict s"),
                "only exactly zero determinants treated as parallel, not tiny ones": _traced("exact det"),
                "a tolerance far above SINGULAR_TOLERANCE: shallow-angle hits treated as parallel": _traced(
                    "big tolerance"
                ),
                "the whole parallelogram counted, not the triangle (no condition on u + v)": _traced("no sum"),
                "triangles behind the rays' origins counted (no condition on s)": _traced("no s"),
                "singular systems swapped for the identity but their answers not masked out": _traced("unmasked"),
            },
        ),
        Exercise(
            ref.ray_mesh_depths,
            _ray_mesh_depths_cases,
            hint="what does a miss get? (Not 0: a minimum over triangles must ignore it.) Is the depth the unknown "
            "s itself, not a distance? Do the boundaries count as hits, and nearly parallel pairs as misses?",
            wrong={
                "misses given depth 0, not inf": _mesh_depths(miss=0.0),
                "the distance |s D| returned, not the depth s": _mesh_depths(distance=True),
                "a ray that starts on a triangle (s = 0) counted as a miss": _mesh_depths("strict s"),
                "rays that meet an edge (u + v = 1) counted as misses": _mesh_depths("strict sum"),
                "only exactly zero determinants treated as parallel, not tiny ones": _mesh_depths("exact det"),
                "a tolerance far above SINGULAR_TOLERANCE: shallow-angle hits treated as parallel": _mesh_depths(
                    "big tolerance"
                ),
                "triangles behind the rays' origins counted (no condition on s)": _mesh_depths("no s"),
                "singular systems swapped for the identity but their answers not masked out": _mesh_depths("unmasked"),
                "the whole parallelogram counted, not the triangle (no condition on u + v)": _mesh_depths("no sum"),
            },
        ),
        Exercise(
            ref.ray_mesh_depths_closed_form,
            _closed_form_cases,
            oracle=ref.ray_mesh_depths,
            extra=_no_solver,
            hint="compare with your ray_mesh_depths on the failing case: where do they disagree? A sign error in "
            "one determinant flips the sign of the unknowns it gives; a determinant whose sign was lost "
            "flips all three, for the triangles wound one way only. The size of the determinant still "
            "decides which pairs are parallel.",
            wrong={
                "the determinant's sign dropped (divided by its absolute value)": _closed_form("abs det"),
                "one cross product taken in the wrong order, which flips the signs of s and v": _closed_form(
                    "cross order"
                ),
                "only exactly zero determinants treated as parallel, not tiny ones": _closed_form("exact det"),
                "the determinant compared with the tolerance without its absolute value": _closed_form("signed det"),
                "the whole parallelogram counted, not the triangle (no condition on u + v)": _closed_form("no sum"),
                "torch's solver used after all (your ray_mesh_depths called)": ref.ray_mesh_depths,
            },
        ),
        Exercise(
            ref.raytrace_mesh,
            _raytrace_mesh_cases,
            hint="one number per ray, a tensor: which axis of the depths holds the triangles, and which of the "
            "depths along it is the one the camera sees?",
            wrong={
                "the first triangle hit in the list, not the nearest": _first_hit,
                "the farthest hit, not the nearest": _farthest_hit,
                "the minimum over the rays axis, not the triangles axis": lambda rays, triangles: (
                    ref.ray_mesh_depths(rays, triangles).min(dim=0).values
                ),
                "the (values, indices) pair returned, not the values": lambda rays, triangles: ref.ray_mesh_depths(
                    rays, triangles
                ).min(dim=-1),
                "triangles taken in chunks up to the number of rays, not of triangles (later ones skipped)": (
                    _chunks_bounded_by_rays
                ),
            },
        ),
        Exercise(
            ref.rotation_matrix_y,
            _rotation_matrix_y_cases,
            hint="check a quarter turn: it must leave the y-axis alone, send the z-axis to the x-axis and the x-axis "
            "to minus the z-axis. The columns of a rotation matrix are where the axes go.",
            wrong={
                "the transpose: it turns the other way": _rotation_transposed,
                "a rotation about the z-axis, not the y-axis": _rotation_about_z,
            },
        ),
        Exercise(
            ref.render_rotating,
            _render_rotating_cases,
            hint="check the angles: frame 0 is the mesh as given, and the last frame is one step short of a full "
            "turn. Then the direction: the points are rows, so which way round does the matrix apply to them?",
            wrong={
                "a full turn in the last frame, which repeats frame 0 (angles from linspace)": _render_rotating(
                    lambda n: torch.linspace(0, 2 * math.pi, n)
                ),
                "the points turned the other way (the matrix applied to rows untransposed)": _render_rotating(
                    lambda n: [2 * math.pi * k / n for k in range(n)], inverse=True
                ),
            },
        ),
        Exercise(
            ref.triangle_normals,
            _triangle_normals_cases,
            hint="each row should have length exactly 1, even for a tiny triangle (nothing added to the length "
            "before dividing), and point to the side from which A, B, C run anticlockwise.",
            wrong={
                "a small epsilon added to the length before dividing (tiny triangles come out too short)": _normals(
                    eps=1e-8
                ),
                "not scaled to length 1": _normals(normalise=False),
                "pointing the other way: (C - A) x (B - A)": _normals(order=-1),
                "the lengths taken over the triangles axis, not the coordinates": _normals(norm_dim=0),
            },
        ),
        Exercise(
            ref.shade_lambert,
            _shade_lambert_cases,
            hint="per ray: the nearest triangle's normal, turned to face the camera; the light scaled to length 1; "
            "nothing below 0 when the light is behind the surface; 0 for a ray that meets nothing.",
            wrong={
                "no clamp at 0: surfaces lit from behind come out negative": _shade(clamp=False),
                "lit from both sides (the absolute value of the cosine, not a clamp at 0)": _shade(two_sided=True),
                "the light not scaled to length 1": _shade(normalise_light=False),
                "normals not turned towards the camera": _shade(face_camera=False),
                "misses not set to 0": _shade(zero_misses=False),
            },
        ),
        Exercise(
            ref.shade_with_shadows,
            _shade_with_shadows_cases,
            hint="follow one point: which way does its shadow ray go, where does it start, and which of its hits "
            "block the light? A miss of the shadow ray blocks nothing, and neither does the surface it starts "
            "on, which it may meet again at a distance near 0. Is that distance measured in the same units "
            "as `bias`?",
            wrong={
                "no bias: the surface shadows itself (shadow acne)": _shadowed(acne=True),
                "the bias argument ignored (SHADOW_BIAS used whatever is passed)": _shadowed(fixed_bias=True),
                "shadow rays cast from the camera, not from the point hit": _shadowed(origin="camera"),
                "shadow rays cast away from the light": _shadowed(direction=-1.0),
                "the light not scaled to length 1, so the shadow ray's depths are not distances": _shadowed(
                    normalise=False
                ),
                "shadow rays that meet nothing (depth inf) counted as blocked": _shadowed(misses_block=True),
            },
        ),
    ],
)
