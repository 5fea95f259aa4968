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
    scale = (0.5 + 1.5 * torch.rand(n, 1, generator=gen)) * torch.where(
        torch.rand(n, 1, generator=gen) < 0.2, -1.0, 1.0
    )
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


# A triangle in the plane x = 2 with its right angle at A, and rays from the origin meeting it (or not).
TRIANGLE = torch.stack([_t(2, 0, 0), _t(2, 2, 0), _t(2, 0, 2)])
TRIANGLE_FAR = TRIANGLE + _t(2, 0, 0)  # the same triangle in the plane x = 4
HAND_RAYS = torch.stack(
    [
        torch.stack([_t(0, 0, 0), _t(1, 0.25, 0.25)]),  # hits (2, 0.5, 0.5) at u = v = 0.25
        torch.stack([_t(0, 0, 0), _t(1, 0.75, 0.75)]),  # u = v = 0.75: inside the parallelogram, outside the triangle
        torch.stack([_t(0, 0, 0), _t(-1, -0.25, -0.25)]),  # its line meets the triangle behind the origin (s = -2)
        torch.stack([_t(3, 0.25, 0.25), _t(0, 1, 0)]),  # parallel to the plane x = 2
        torch.stack([_t(0, 0, 0), _t(1, 0, 0)]),  # through the corner A (s = 2, u = v = 0)
        torch.stack([_t(0, 0, 0), _t(2, 0.5, 0.5)]),  # as the first ray, but D twice as long: s = 1
    ]
)
HAND_HITS = torch.tensor([True, False, False, False, True, True])
HAND_DEPTHS = torch.tensor([[2.0, 4.0], [INF, INF], [INF, INF], [INF, INF], [2.0, 4.0], [1.0, 2.0]])


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
        yield Case(
            (int(torch.randint(2, 40, (), generator=gen)), round(float(torch.rand((), generator=gen)) * 5 + 0.1, 3)),
            "random size and limit",
        )


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
    ]
    for (L1, L2), hit, label in hand:
        yield Case((RAY_ALONG_X, torch.stack([L1, L2])), label, expected=hit)
    ray = torch.stack([_t(1, 1, 0), _t(1, 1, 0)])
    yield Case((ray, torch.stack(_segment(3, 0, 0, 3))), "an oblique ray meets the segment's midpoint", expected=True)
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
    labels = [
        "hits at u = v = 0.25",
        "u = v = 0.75: inside the parallelogram on AB and AC, not the triangle",
        "the ray points away from the triangle",
        "the ray is parallel to the triangle's plane",
        "the ray passes through the corner A",
        "a longer D hits as well",
    ]
    for (O, D), hit, label in zip(HAND_RAYS, HAND_HITS.tolist(), labels):
        yield Case((A, B, C, O, D), label, expected=hit)
    yield Case((A, B, C, _t(4, 0.5, 0.5), _t(-1, 0, 0)), "hit from the far side", expected=True)
    found = 0
    while found < 12:
        triangles = _random_triangles(gen, 1)
        rays = _aimed_rays(gen, triangles, 1)
        if _clear(*_triangle_params(rays, triangles)):
            found += 1
            yield Case((*triangles[0], *rays[0]), "random triangle and ray")


def _raytrace_triangle_cases(gen):
    yield Case((HAND_RAYS, TRIANGLE), "hand-made rays: hit, miss, behind, parallel, corner, long D", expected=HAND_HITS)
    for nrays, grid in [(64, True), (100, True), (9, False)]:
        rays, triangles = _clean_mesh_case(gen, nrays, 1, grid)
        yield Case((rays, triangles[0]), f"{nrays} {'screen' if grid else 'random'} rays, a random triangle")


def _ray_mesh_depths_cases(gen):
    yield Case(
        (HAND_RAYS, torch.stack([TRIANGLE, TRIANGLE_FAR])),
        "hand-made rays, the triangle at x = 2 and x = 4",
        expected=HAND_DEPTHS,
    )
    for nrays, ntriangles, grid in [(36, 5, True), (12, 7, False), (5, 1, False)]:
        rays, triangles = _clean_mesh_case(gen, nrays, ntriangles, grid)
        yield Case((rays, triangles), f"{nrays} rays, {ntriangles} random triangles")


def _raytrace_mesh_cases(gen):
    yield Case(
        (HAND_RAYS, torch.stack([TRIANGLE_FAR, TRIANGLE])),
        "hand-made rays, the triangle at x = 4 and x = 2",
        expected=HAND_DEPTHS[:, 0],
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
        yield Case(
            (rays, triangles, torch.randn(3, generator=gen)), f"{nrays} screen rays, {ntriangles} random triangles"
        )


# ----------------------------------------------------------------------------- realistic wrong implementations


def _rays_1d_arange(num_pixels, y_limit):
    rays = torch.zeros(num_pixels, 2, 3)
    rays[:, 1, 0] = 1
    rays[:, 1, 1] = -y_limit + 2 * y_limit * torch.arange(num_pixels) / num_pixels
    return rays


def _rays_1d_z_axis(num_pixels, y_limit):
    return ref.make_rays_1d(num_pixels, y_limit)[..., [0, 2, 1]]


def _intersect_1d(check_u=True, check_v=True, singular=True, closed=True):
    def intersect(ray, segment):
        O, D = ray[:, :2]
        L1, L2 = segment[:, :2]
        mat = torch.stack([D, L1 - L2], dim=-1)
        if singular and torch.linalg.det(mat).abs() < 1e-6:
            return False
        u, v = torch.linalg.solve(mat, L1 - O)
        ok_v = (0 <= v <= 1) if closed else (0 < v < 1)
        return bool((u >= 0 or not check_u) and (ok_v or not check_v))

    return intersect


def _intersect_rays(mask=True, check_u=True, any_dim=-1):
    def intersect(rays, segments):
        O, D = rays[:, None, 0, :2], rays[:, None, 1, :2]
        L1, L2 = segments[None, :, 0, :2], segments[None, :, 1, :2]
        mat = torch.stack(torch.broadcast_tensors(D, L1 - L2), dim=-1)
        singular = torch.linalg.det(mat).abs() < 1e-6
        mat = torch.where(singular[..., None, None], torch.eye(2), mat)
        u, v = torch.linalg.solve(mat, (L1 - O).expand(*mat.shape[:-1])).unbind(-1)
        hits = ((u >= 0) | (not check_u)) & (v >= 0) & (v <= 1)
        return (hits & ~singular if mask else hits).any(dim=any_dim)

    return intersect


def _intersect_rays_unguarded(rays, segments):
    O, D = rays[:, None, 0, :2], rays[:, None, 1, :2]
    L1, L2 = segments[None, :, 0, :2], segments[None, :, 1, :2]
    mat = torch.stack(torch.broadcast_tensors(D, L1 - L2), dim=-1)
    u, v = torch.linalg.solve(mat, (L1 - O).expand(*mat.shape[:-1])).unbind(-1)
    return ((u >= 0) & (v >= 0) & (v <= 1)).any(dim=-1)


def _rays_2d_z_major(num_pixels_y, num_pixels_z, y_limit, z_limit):
    rays = ref.make_rays_2d(num_pixels_y, num_pixels_z, y_limit, z_limit)
    return einops.rearrange(rays, "(y z) p d -> (z y) p d", y=num_pixels_y)


def _rays_2d_swapped_limits(num_pixels_y, num_pixels_z, y_limit, z_limit):
    return ref.make_rays_2d(num_pixels_y, num_pixels_z, z_limit, y_limit)


def _triangle_params_f32(rays, triangles, transpose=False, mask=True):
    """(hit-able, s, u, v) by batched solve, as a learner would write it; optionally with a common mistake."""
    O, D = rays[:, None, 0], rays[:, None, 1]
    A, B, C = triangles[None].unbind(dim=2)
    mat = torch.stack(torch.broadcast_tensors(-D, B - A, C - A), dim=-1 if not transpose else -2)
    singular = torch.linalg.det(mat).abs() < 1e-6
    if mask:
        mat = torch.where(singular[..., None, None], torch.eye(3), mat)
    s, u, v = torch.linalg.solve(mat, (O - A).expand(*mat.shape[:-1])).unbind(-1)
    return ~singular if mask else torch.ones_like(singular), s, u, v


def _triangle_hits(check_s=True, check_uv_sum=True, transpose=False, mask=True):
    def hits(rays, triangles):
        ok, s, u, v = _triangle_params_f32(rays, triangles, transpose, mask)
        return ok & ((s >= 0) | (not check_s)) & (u >= 0) & (v >= 0) & ((u + v <= 1) | (not check_uv_sum))

    return hits


def _single(hits):
    return lambda A, B, C, O, D: bool(hits(torch.stack([O, D])[None], torch.stack([A, B, C])[None])[0, 0])


def _traced(hits):
    return lambda rays, triangle: hits(rays, triangle[None])[:, 0]


def _mesh_depths(hits, miss=INF):
    def depths(rays, triangles):
        _, s, _, _ = _triangle_params_f32(rays, triangles)
        return torch.where(hits(rays, triangles), s, miss)

    return depths


def _first_hit(rays, triangles):
    depths = ref.ray_mesh_depths(rays, triangles)
    first = depths.isfinite().to(torch.int8).argmax(dim=-1)
    return depths.gather(-1, first[:, None])[:, 0]


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


def _normals(order=1, normalise=True, norm_dim=-1):
    def normals(triangles):
        A, B, C = triangles.unbind(dim=1)
        n = torch.linalg.cross(B - A, C - A, dim=-1) * order
        return n / n.norm(dim=norm_dim, keepdim=True) if normalise else n

    return normals


def _shade(clamp=True, normalise_light=True, face_camera=True, zero_misses=True):
    def shade(rays, triangles, light):
        depths = ref.ray_mesh_depths(rays, triangles)
        nearest = depths.argmin(dim=-1)
        hit = depths.min(dim=-1).values.isfinite()
        normals = ref.triangle_normals(triangles)[nearest]
        if face_camera:
            away = (normals * rays[:, 1]).sum(-1) > 0
            normals = torch.where(away[:, None], -normals, normals)
        brightness = normals @ (light / light.norm() if normalise_light else light)
        brightness = brightness.clamp(min=0) if clamp else brightness
        return torch.where(hit, brightness, 0.0) if zero_misses else brightness

    return shade


check = Checker(
    "0.1",
    [
        Exercise(
            ref.make_rays_1d,
            _make_rays_1d_cases,
            hint="rays[:, 0] is all zeros; rays[:, 1] is (1, y, 0) with y = torch.linspace(-y_limit, y_limit, num_pixels), "
            "which includes both ends.",
            wrong={
                "endpoint left out (arange spacing)": _rays_1d_arange,
                "y written into the z coordinate": _rays_1d_z_axis,
            },
        ),
        Exercise(
            ref.intersect_ray_1d,
            _intersect_ray_1d_cases,
            hint="Solve [D, L1 - L2] @ (u, v) = L1 - O on x and y only; return False when |det| < 1e-6 "
            "(parallel), else u >= 0 and 0 <= v <= 1 (ends included).",
            wrong={
                "forgets u >= 0": _intersect_1d(check_u=False),
                "forgets the bounds on v": _intersect_1d(check_v=False),
                "no check for parallel lines": _intersect_1d(singular=False),
                "excludes the endpoints": _intersect_1d(closed=False),
            },
        ),
        Exercise(
            ref.intersect_rays_1d,
            _intersect_rays_1d_cases,
            hint="Build a (nrays, nsegments, 2, 2) batch of matrices; replace singular ones (|det| < 1e-6) by the "
            "identity before torch.linalg.solve, then mask their results out; `any` over the segments axis.",
            wrong={
                "singular systems solved but not masked out": _intersect_rays(mask=False),
                "singular systems passed to solve": _intersect_rays_unguarded,
                "forgets u >= 0": _intersect_rays(check_u=False),
                "any over the rays axis": _intersect_rays(any_dim=0),
            },
        ),
        Exercise(
            ref.make_rays_2d,
            _make_rays_2d_cases,
            hint="Fill a (num_pixels_y, num_pixels_z, 2, 3) tensor (y values down the first axis, z across the second), "
            "then flatten with einops.rearrange(..., 'y z p d -> (y z) p d').",
            wrong={"z varies slowest": _rays_2d_z_major, "y and z limits swapped": _rays_2d_swapped_limits},
        ),
        Exercise(
            ref.triangle_ray_intersects,
            _triangle_ray_intersects_cases,
            hint="The columns of the matrix are -D, B - A and C - A (torch.stack(..., dim=-1)); the right-hand side is "
            "O - A. A hit needs s >= 0, u >= 0, v >= 0 and u + v <= 1; |det| < 1e-6 is a miss.",
            wrong={
                "forgets u + v <= 1": _single(_triangle_hits(check_uv_sum=False)),
                "forgets s >= 0": _single(_triangle_hits(check_s=False)),
                "vectors stacked as rows, not columns": _single(_triangle_hits(transpose=True)),
                "no check for a parallel ray": _single(_triangle_hits(mask=False)),
            },
        ),
        Exercise(
            ref.raytrace_triangle,
            _raytrace_triangle_cases,
            hint="As triangle_ray_intersects, with a leading nrays axis: a (nrays, 3, 3) batch of matrices. Replace "
            "singular ones by the identity before solving, and mask them out after.",
            wrong={
                "forgets u + v <= 1": _traced(_triangle_hits(check_uv_sum=False)),
                "forgets s >= 0": _traced(_triangle_hits(check_s=False)),
                "singular systems solved but not masked out": _traced(_triangle_hits(mask=False)),
            },
        ),
        Exercise(
            ref.ray_mesh_depths,
            _ray_mesh_depths_cases,
            hint="Broadcast rays against triangles into (nrays, ntriangles, 3, 3) matrices; s is the first unknown. "
            "torch.where(hit, s, torch.inf) keeps only the hits.",
            wrong={
                "misses are 0, not inf": _mesh_depths(_triangle_hits(), miss=0.0),
                "forgets s >= 0": _mesh_depths(_triangle_hits(check_s=False)),
                "singular systems solved but not masked out": _mesh_depths(_triangle_hits(mask=False)),
                "forgets u + v <= 1": _mesh_depths(_triangle_hits(check_uv_sum=False)),
            },
        ),
        Exercise(
            ref.raytrace_mesh,
            _raytrace_mesh_cases,
            hint="Take ray_mesh_depths(rays, triangles) and its minimum over the triangles axis (.min(dim=-1).values); "
            "misses stay inf.",
            wrong={
                "the first triangle hit, not the nearest": _first_hit,
                "the farthest hit": _farthest_hit,
                "minimum over the rays axis": lambda rays, triangles: (
                    ref.ray_mesh_depths(rays, triangles).min(dim=0).values
                ),
            },
        ),
        Exercise(
            ref.rotation_matrix_y,
            _rotation_matrix_y_cases,
            hint="[[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]]: y stays put, and a quarter turn sends z to x and x to -z.",
            wrong={
                "transposed (turns the other way)": _rotation_transposed,
                "rotates about the z-axis": _rotation_about_z,
            },
        ),
        Exercise(
            ref.render_rotating,
            _render_rotating_cases,
            hint="Frame k turns the mesh by 2 pi k / num_frames (never a full turn). Rotate the points with "
            "triangles @ rotation_matrix_y(theta).T, then call raytrace_mesh.",
            wrong={
                "angles from linspace(0, 2 pi, num_frames), which repeats frame 0": _render_rotating(
                    lambda n: torch.linspace(0, 2 * math.pi, n)
                ),
                "points multiplied by the matrix, not its transpose (turns the other way)": _render_rotating(
                    lambda n: [2 * math.pi * k / n for k in range(n)], inverse=True
                ),
            },
        ),
        Exercise(
            ref.triangle_normals,
            _triangle_normals_cases,
            hint="torch.linalg.cross(B - A, C - A, dim=-1), divided by its length along the last axis (keepdim=True).",
            wrong={
                "not normalised": _normals(normalise=False),
                "(C - A) x (B - A): flipped": _normals(order=-1),
                "normalised over the wrong axis": _normals(norm_dim=0),
            },
        ),
        Exercise(
            ref.shade_lambert,
            _shade_lambert_cases,
            hint="Nearest triangle: ray_mesh_depths(...).argmin(dim=-1). Turn each normal to face the ray (n . D < 0), "
            "normalise the light, clamp n . l at 0, and set the misses to 0.",
            wrong={
                "no clamp at 0": _shade(clamp=False),
                "light not normalised": _shade(normalise_light=False),
                "normals not turned towards the camera": _shade(face_camera=False),
                "misses not set to 0": _shade(zero_misses=False),
            },
        ),
    ],
)
