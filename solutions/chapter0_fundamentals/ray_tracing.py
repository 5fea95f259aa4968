"""Reference solutions for 0.1 Ray tracing: rays, segments and triangles intersected in batched torch.

Conventions used throughout the section:

- A ray is a (2, 3) tensor: its origin O and its direction D. Its points are O + s D for s >= 0.
- The camera looks along +x at a screen one unit away; a pixel's ray has direction (1, y, z).
  Rendered images are indexed [y, z], so y runs down the picture and z across it.
- A triangle is a (3, 3) tensor of its corners A, B, C; a mesh is (triangles, 3, 3).
- Intersections come from linear systems; a system with |det| < SINGULAR_TOLERANCE (a ray parallel
  to a segment or to a triangle's plane) counts as no intersection.
"""

import math

import einops
import torch
from jaxtyping import Bool, Float
from torch import Tensor

SINGULAR_TOLERANCE = 1e-6
SHADOW_BIAS = 1e-3  # how far from its start a shadow ray's hit must be to count as another surface


def make_torus(
    major_radius: float = 1.0, minor_radius: float = 0.4, n_major: int = 24, n_minor: int = 12
) -> Float[Tensor, "triangles points=3 dims=3"]:
    """A torus centred at the origin around the x-axis (so the camera looks through its hole), as
    2 * n_major * n_minor triangles.

    The tube's centre line is the circle of radius `major_radius` in the yz-plane; the tube has radius
    `minor_radius`. Triangles are wound so that (B - A) x (C - A) points out of the surface.
    """
    around = torch.arange(n_major) * (2 * math.pi / n_major)  # angle around the x-axis
    tube = torch.arange(n_minor) * (2 * math.pi / n_minor)  # angle around the tube
    around, tube = torch.meshgrid(around, tube, indexing="ij")
    ring = major_radius + minor_radius * torch.cos(tube)  # distance from the x-axis
    grid = torch.stack([minor_radius * torch.sin(tube), ring * torch.cos(around), ring * torch.sin(around)], dim=-1)
    # Grid cell (i, j) is a quad with corners p00, p10, p11, p01 (wrapping round), split into two triangles.
    p00, p10 = grid, grid.roll(-1, dims=0)
    p01, p11 = grid.roll(-1, dims=1), grid.roll((-1, -1), dims=(0, 1))
    first = torch.stack([p00, p10, p11], dim=-2)
    second = torch.stack([p00, p11, p01], dim=-2)
    return einops.rearrange([first, second], "two i j points dims -> (i j two) points dims")


def make_rays_1d(num_pixels: int, y_limit: float) -> Float[Tensor, "num_pixels points=2 dims=3"]:
    """Rays from the origin through `num_pixels` evenly spaced points (1, y, 0), y from -y_limit to y_limit."""
    rays = torch.zeros(num_pixels, 2, 3)
    rays[:, 1, 0] = 1.0
    rays[:, 1, 1] = torch.linspace(-y_limit, y_limit, num_pixels)
    return rays


def intersect_ray_1d(ray: Float[Tensor, "points=2 dims=3"], segment: Float[Tensor, "points=2 dims=3"]) -> bool:
    """Whether the ray meets the segment, using x and y only. Parallel lines count as a miss, and so do
    nearly parallel ones, whose system has |det| below SINGULAR_TOLERANCE."""
    O, D = ray[:, :2]
    L1, L2 = segment[:, :2]
    # O + u D = L1 + v (L2 - L1)  <=>  [D, L1 - L2] @ (u, v) = L1 - O
    mat = torch.stack([D, L1 - L2], dim=-1)
    if torch.linalg.det(mat).abs() < SINGULAR_TOLERANCE:
        return False
    u, v = torch.linalg.solve(mat, L1 - O)
    return bool(u >= 0 and 0 <= v <= 1)


def intersect_rays_1d(
    rays: Float[Tensor, "nrays points=2 dims=3"], segments: Float[Tensor, "nsegments points=2 dims=3"]
) -> Bool[Tensor, " nrays"]:
    """For each ray, whether it meets any of the segments (x and y only). No Python loops."""
    nrays, nsegments = len(rays), len(segments)
    O = einops.repeat(rays[:, 0, :2], "r d -> r s d", s=nsegments)
    D = einops.repeat(rays[:, 1, :2], "r d -> r s d", s=nsegments)
    L1 = einops.repeat(segments[:, 0, :2], "s d -> r s d", r=nrays)
    L2 = einops.repeat(segments[:, 1, :2], "s d -> r s d", r=nrays)

    mat = torch.stack([D, L1 - L2], dim=-1)  # (nrays, nsegments, 2, 2)
    singular = torch.linalg.det(mat).abs() < SINGULAR_TOLERANCE
    # Swap singular systems for the identity so the batched solve succeeds, then mask their answers out.
    mat = torch.where(singular[..., None, None], torch.eye(2), mat)
    u, v = torch.linalg.solve(mat, L1 - O).unbind(dim=-1)
    hits = (u >= 0) & (v >= 0) & (v <= 1) & ~singular
    return hits.any(dim=-1)


def make_rays_2d(
    num_pixels_y: int, num_pixels_z: int, y_limit: float, z_limit: float
) -> Float[Tensor, "nrays=num_pixels_y*num_pixels_z points=2 dims=3"]:
    """Rays from the origin through a grid of points (1, y, z) on the screen; ray y_index * num_pixels_z + z_index
    goes through the y_index-th value of y and the z_index-th value of z."""
    rays = torch.zeros(num_pixels_y, num_pixels_z, 2, 3)
    rays[:, :, 1, 0] = 1.0
    rays[:, :, 1, 1] = torch.linspace(-y_limit, y_limit, num_pixels_y)[:, None]
    rays[:, :, 1, 2] = torch.linspace(-z_limit, z_limit, num_pixels_z)[None, :]
    return einops.rearrange(rays, "y z points dims -> (y z) points dims")


def triangle_ray_intersects(
    A: Float[Tensor, "dims=3"],
    B: Float[Tensor, "dims=3"],
    C: Float[Tensor, "dims=3"],
    O: Float[Tensor, "dims=3"],
    D: Float[Tensor, "dims=3"],
) -> bool:
    """Whether the ray O + s D (s >= 0) meets the triangle ABC. A ray parallel to its plane counts as a miss,
    and so does a nearly parallel one, whose system has |det| below SINGULAR_TOLERANCE."""
    # O + s D = A + u (B - A) + v (C - A)  <=>  [-D, B - A, C - A] @ (s, u, v) = O - A
    mat = torch.stack([-D, B - A, C - A], dim=-1)
    if torch.linalg.det(mat).abs() < SINGULAR_TOLERANCE:
        return False
    s, u, v = torch.linalg.solve(mat, O - A)
    return bool(s >= 0 and u >= 0 and v >= 0 and u + v <= 1)


def raytrace_triangle(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangle: Float[Tensor, "points=3 dims=3"]
) -> Bool[Tensor, " nrays"]:
    """For each ray, whether it meets the triangle. No Python loops."""
    O, D = rays.unbind(dim=1)  # each (nrays, 3)
    A, B, C = einops.repeat(triangle, "points dims -> points nrays dims", nrays=len(rays))

    mat = torch.stack([-D, B - A, C - A], dim=-1)  # (nrays, 3, 3)
    singular = torch.linalg.det(mat).abs() < SINGULAR_TOLERANCE
    mat = torch.where(singular[..., None, None], torch.eye(3), mat)
    s, u, v = torch.linalg.solve(mat, O - A).unbind(dim=-1)
    return (s >= 0) & (u >= 0) & (v >= 0) & (u + v <= 1) & ~singular


def ray_mesh_depths(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangles: Float[Tensor, "ntriangles points=3 dims=3"]
) -> Float[Tensor, "nrays ntriangles"]:
    """The depth s at which each ray meets each triangle (the hit is at O + s D), or inf where it misses."""
    nrays, ntriangles = len(rays), len(triangles)
    O, D = einops.repeat(rays, "r points dims -> points r t dims", t=ntriangles)
    A, B, C = einops.repeat(triangles, "t points dims -> points r t dims", r=nrays)

    mat = torch.stack([-D, B - A, C - A], dim=-1)  # (nrays, ntriangles, 3, 3)
    singular = torch.linalg.det(mat).abs() < SINGULAR_TOLERANCE
    mat = torch.where(singular[..., None, None], torch.eye(3), mat)
    s, u, v = torch.linalg.solve(mat, O - A).unbind(dim=-1)
    hits = (s >= 0) & (u >= 0) & (v >= 0) & (u + v <= 1) & ~singular
    return torch.where(hits, s, torch.inf)


def ray_mesh_depths_closed_form(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangles: Float[Tensor, "ntriangles points=3 dims=3"]
) -> Float[Tensor, "nrays ntriangles"]:
    """The same depths as ray_mesh_depths (inf where a ray misses a triangle), with every system solved in closed
    form: no torch.linalg.solve, no det, no inverse."""
    O, D = rays[:, None, 0], rays[:, None, 1]  # (nrays, 1, 3)
    A, B, C = triangles[None].unbind(dim=2)  # each (1, ntriangles, 3)
    E1, E2, T = B - A, C - A, O - A
    # Cramer's rule for [-D, E1, E2] @ (s, u, v) = T, each 3x3 determinant a triple product a . (b x c).
    P = torch.linalg.cross(D, E2, dim=-1)  # broadcasts to (nrays, ntriangles, 3)
    Q = torch.linalg.cross(T, E1, dim=-1)
    det = (E1 * P).sum(dim=-1)  # det[-D, E1, E2]
    singular = det.abs() < SINGULAR_TOLERANCE
    det = torch.where(singular, 1.0, det)  # any nonzero value: these pairs are masked out below
    s, u, v = (E2 * Q).sum(dim=-1) / det, (T * P).sum(dim=-1) / det, (D * Q).sum(dim=-1) / det
    hits = (s >= 0) & (u >= 0) & (v >= 0) & (u + v <= 1) & ~singular
    return torch.where(hits, s, torch.inf)


def raytrace_mesh(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangles: Float[Tensor, "ntriangles points=3 dims=3"]
) -> Float[Tensor, " nrays"]:
    """The depth of the nearest triangle each ray meets, or inf where it meets none."""
    return ray_mesh_depths(rays, triangles).min(dim=-1).values


def rotation_matrix_y(theta: float) -> Float[Tensor, "3 3"]:
    """The matrix rotating vectors by `theta` radians about the y-axis (right-hand rule: z turns towards x)."""
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def render_rotating(
    rays: Float[Tensor, "nrays points=2 dims=3"],
    triangles: Float[Tensor, "ntriangles points=3 dims=3"],
    num_frames: int,
) -> Float[Tensor, "num_frames nrays"]:
    """Depth images of the mesh turned about the y-axis by 2 pi k / num_frames, for k = 0 .. num_frames - 1."""
    frames = []
    for k in range(num_frames):
        rotation = rotation_matrix_y(2 * math.pi * k / num_frames)
        # Each point p becomes rotation @ p; for a stack of row vectors that is points @ rotation.T.
        frames.append(raytrace_mesh(rays, triangles @ rotation.T))
    return torch.stack(frames)


def triangle_normals(triangles: Float[Tensor, "ntriangles points=3 dims=3"]) -> Float[Tensor, "ntriangles dims=3"]:
    """The unit normal of each triangle, on the side from which its corners A, B, C run anticlockwise."""
    A, B, C = triangles.unbind(dim=1)
    normals = torch.linalg.cross(B - A, C - A, dim=-1)
    return normals / normals.norm(dim=-1, keepdim=True)


def shade_lambert(
    rays: Float[Tensor, "nrays points=2 dims=3"],
    triangles: Float[Tensor, "ntriangles points=3 dims=3"],
    light: Float[Tensor, "dims=3"],
) -> Float[Tensor, " nrays"]:
    """The Lambert brightness of the nearest surface each ray meets, 0 where it meets none.

    The brightness is the cosine of the angle between the surface's normal and the light, or 0 when the light is
    behind the surface. `light` points from the surface towards the light (any length); the normal is that of the
    triangle hit, turned to face the ray's origin.
    """
    depths = ray_mesh_depths(rays, triangles)
    nearest = depths.argmin(dim=-1)  # (nrays,)
    hit = depths.min(dim=-1).values.isfinite()

    normals = triangle_normals(triangles)[nearest]  # (nrays, 3)
    facing_away = (normals * rays[:, 1]).sum(dim=-1) > 0  # a surface facing the camera has n . D < 0
    normals = torch.where(facing_away[:, None], -normals, normals)
    brightness = (normals @ (light / light.norm())).clamp(min=0)
    return torch.where(hit, brightness, 0.0)


def shade_with_shadows(
    rays: Float[Tensor, "nrays points=2 dims=3"],
    triangles: Float[Tensor, "ntriangles points=3 dims=3"],
    light: Float[Tensor, "dims=3"],
    bias: float = SHADOW_BIAS,
) -> Float[Tensor, " nrays"]:
    """The brightness shade_lambert gives each ray, except 0 where the mesh blocks the light from the point hit:
    where a ray from that point towards the light meets a triangle at a distance above `bias`.

    The light is far away in the direction `light` (any length), so its rays are parallel. A triangle met within
    `bias` of the point is the surface the point lies on, met again through rounding, and does not count.
    """
    depth = raytrace_mesh(rays, triangles)
    hit = depth.isfinite()
    # A miss has no point to light; any finite stand-in will do, since its brightness is 0 anyway.
    points = rays[:, 0] + torch.where(hit, depth, 0.0)[:, None] * rays[:, 1]
    towards_light = (light / light.norm()).expand_as(points)  # unit length, so depths along it are distances
    shadow_depths = ray_mesh_depths(torch.stack([points, towards_light], dim=1), triangles)
    blocked = (shadow_depths.isfinite() & (shadow_depths > bias)).any(dim=-1)
    return torch.where(blocked, 0.0, shade_lambert(rays, triangles, light))
