# %% [markdown]
# # 0.1 Ray tracing
#
# A ray tracer makes a picture by asking one question per pixel: *if I look out through this pixel,
# what do I see first?* Answering it for one pixel and one object is a small linear system. Answering
# it for thousands of pixels and hundreds of triangles at once, without a Python loop, is a lesson in
# batched tensor code: lining up axes, broadcasting, solving many systems in one call, and masking out
# the cases where the maths breaks down.
#
# None of this is about AI safety. It is here because every later section (attention patterns,
# activation patching, batched rollouts) needs the same habits, and geometry is a forgiving place to
# learn them: when a render looks wrong, you can see it.
#
# **What you will build**
#
# 1. Rays and line segments in 2D: make a fan of rays, intersect one ray with one segment, then every
#    ray with every segment in one batched call.
# 2. A camera: a 2D grid of rays, and the intersection of rays with triangles.
# 3. A mesh renderer: depth images of a torus the course builds from a formula, and the same depths
#    computed in closed form, without a solver.
# 4. Turning the mesh with a rotation matrix, shown as an animation.
# 5. Bonus: lighting, with Lambert's cosine law, and shadows cast by a second ray.
#
# Each part ends with a short **try it**: predict what a change will do, then run the cell that shows it.
# Each exercise states an estimate of its time; the fourteen add up to about three and a half hours
# (210 minutes: 45, 40, 55 and 15 for parts 1 to 4, and 55 for the bonus).
#
# **Conventions** used throughout:
#
# - A ray is a `(2, 3)` tensor: its origin $O$ and its direction $D$. Its points are $O + sD$ for
#   $s \ge 0$. A batch of rays is `(nrays, 2, 3)`.
# - The camera sits at the origin looking along $+x$, at a screen one unit away: the ray through the
#   screen point $(1, y, z)$ has direction $(1, y, z)$.
# - A rendered image is indexed `[y, z]`, so $y$ runs down the picture and $z$ across it.
# - A triangle is a `(3, 3)` tensor of its corners $A, B, C$; a mesh is `(ntriangles, 3, 3)`.

# %%
import math

import einops
import plotly.express as px
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from course.plot import imshow
from solutions.chapter0_fundamentals.ray_tracing import SHADOW_BIAS, SINGULAR_TOLERANCE, make_torus
from tests.checks.chapter0_fundamentals.ray_tracing import check  # noqa: F401 (the build adds the check cells)

# %% [markdown]
# Two small plotting helpers: one draws line segments (in the $xy$-plane, or in 3D when any $z$ is
# nonzero), the other turns a ray's origin and direction into a segment you can draw.


# %%
def plot_lines(
    groups: dict[str, Float[Tensor, "n 2 3"]], title: str = "", meshes: dict[str, Tensor] | None = None
) -> go.Figure:
    """Draw named groups of segments (start, end), and optionally named meshes (ntriangles, 3, 3) in 3D."""
    meshes = meshes or {}
    three_d = bool(meshes) or any(bool(lines[..., 2].any()) for lines in groups.values())
    fig = go.Figure()
    for name, lines in groups.items():
        # A NaN point between segments lifts the pen, so each group is one trace.
        points = torch.cat([lines, torch.full((len(lines), 1, 3), torch.nan)], dim=1).reshape(-1, 3)
        x, y, z = points.T.tolist()
        if three_d:
            trace = go.Scatter3d(x=x, y=y, z=z, mode="lines", name=name)
        else:
            trace = go.Scatter(x=x, y=y, mode="lines", name=name)
        fig.add_trace(trace)
    for name, triangles in meshes.items():
        x, y, z = triangles.reshape(-1, 3).T.tolist()
        corner = torch.arange(len(triangles)) * 3
        fig.add_trace(
            go.Mesh3d(
                x=x,
                y=y,
                z=z,
                i=corner.tolist(),
                j=(corner + 1).tolist(),
                k=(corner + 2).tolist(),
                name=name,
                opacity=0.6,
                showlegend=True,
            )
        )
    if three_d:
        fig.update_layout(scene=dict(aspectmode="data", xaxis_title="x", yaxis_title="y", zaxis_title="z"))
    else:
        fig.update_xaxes(title="x").update_yaxes(title="y")
    return fig.update_layout(title=title, height=450, margin=dict(l=10, r=10, t=40, b=10))


def ray_segments(rays: Float[Tensor, "nrays 2 3"], length: float = 1.0) -> Float[Tensor, "nrays 2 3"]:
    """Each ray drawn from O to O + length * D."""
    return torch.stack([rays[:, 0], rays[:, 0] + length * rays[:, 1]], dim=1)


# %% [markdown]
# ## 1. Rays and segments in 2D
#
# We start flat: every point has $z = 0$. The tensors keep all three coordinates anyway, so that the
# code carries over to 3D unchanged.
#
# A one-dimensional camera is a fan of rays from the origin through evenly spaced points
# $(1, y, 0)$ of the screen, with $y$ running from $-y_\text{limit}$ to $y_\text{limit}$, both ends
# included. `make_rays_1d(3, 1.0)` is the three rays with directions $(1, -1, 0)$, $(1, 0, 0)$ and
# $(1, 1, 0)$.


# %% [exercise] make_rays_1d difficulty=1 importance=3 minutes=5
def make_rays_1d(num_pixels: int, y_limit: float) -> Float[Tensor, "num_pixels points=2 dims=3"]:
    """Rays from the origin through `num_pixels` evenly spaced points (1, y, 0), y from -y_limit to y_limit."""
    raise NotImplementedError()


# %% [hint]
# Only the directions change from ray to ray, and only in $y$: every origin is the camera, and every
# direction has $x = 1$ and $z = 0$. Which torch function gives evenly spaced values with both ends
# included?

# %% [hint]
# `torch.linspace(start, end, steps)` includes both ends. Start from a zero tensor of shape
# `(num_pixels, 2, 3)` and write into the directions' $x$ and $y$ (index 1 on the points axis).

# %%
assert make_rays_1d(3, 1.0)[:, 1].tolist() == [[1, -1, 0], [1, 0, 0], [1, 1, 0]]

# %% [markdown]
# Here are nine rays and three segments. The plot draws each ray out to six times its direction
# vector, far enough to cross every segment it meets.

# %%
segments = torch.tensor(
    [
        [[1.0, -12.0, 0.0], [1.0, -6.0, 0.0]],
        [[-2.0, -4.0, 0.0], [-2.0, 4.0, 0.0]],
        [[2.0, 12.0, 0.0], [5.0, 1.0, 0.0]],
    ]
)

# %%
rays_1d = make_rays_1d(9, 10.0)
plot_lines({"rays": ray_segments(rays_1d, 6.0), "segments": segments}, title="Nine rays and three segments").show()

# %% [markdown]
# ### One ray, one segment
#
# The ray's points are $O + uD$ for $u \ge 0$; the segment's points are $L_1 + v(L_2 - L_1)$ for
# $0 \le v \le 1$. They meet where
#
# $$O + uD = L_1 + v(L_2 - L_1) \quad\Longleftrightarrow\quad
# \begin{pmatrix} D & L_1 - L_2 \end{pmatrix} \begin{pmatrix} u \\ v \end{pmatrix} = L_1 - O,$$
#
# a $2 \times 2$ linear system on the $x$ and $y$ coordinates, whose matrix has the columns $D$ and
# $L_1 - L_2$. Solve it with `torch.linalg.solve(matrix, vector)`; the ray meets the segment when
# $u \ge 0$ (in front of the origin, not behind it) and $0 \le v \le 1$ (between the endpoints).
#
# When the ray is parallel to the segment the matrix is singular: no solution, or infinitely many if
# they lie on one line. We count both as a miss. Rounding rarely leaves the determinant of a parallel
# pair at exactly 0: below, a direction $(0.1, 0.3)$ and a segment along $(0.3, 0.9)$, three times it
# on paper, give a determinant of a few times $10^{-9}$ in float32, not 0. So treat
# $|\det| <$ `SINGULAR_TOLERANCE` ($10^{-6}$, imported above) as singular, and check it with
# `torch.linalg.det` *before* solving, since `solve` raises an error on an exactly singular matrix.

# %%
assert SINGULAR_TOLERANCE == 1e-6
nearly_parallel = torch.tensor([[0.1, 0.3], [0.3, 0.9]])  # columns (0.1, 0.3) and (0.3, 0.9)
assert 1e-9 < abs(torch.linalg.det(nearly_parallel)) < 1e-8 < SINGULAR_TOLERANCE
try:
    torch.linalg.solve(torch.tensor([[1.0, 2.0], [2.0, 4.0]]), torch.tensor([1.0, 1.0]))
    raise AssertionError("solve accepted a singular matrix")
except torch.linalg.LinAlgError:
    pass


# %% [exercise] intersect_ray_1d difficulty=2 importance=4 minutes=15
def intersect_ray_1d(ray: Float[Tensor, "points=2 dims=3"], segment: Float[Tensor, "points=2 dims=3"]) -> bool:
    """Whether the ray meets the segment, using x and y only. Parallel lines count as a miss, and so do
    nearly parallel ones, whose system has |det| below SINGULAR_TOLERANCE."""
    raise NotImplementedError()


# %% [hint]
# Keep only $x$ and $y$ of every point. Then three questions, in this order: is the matrix singular
# or nearly so? If not, is the meeting point in front of the ray's origin, and between the
# segment's endpoints? Mind the boundaries: a ray that starts on the segment ($u = 0$), or passes
# through an endpoint ($v = 0$ or $1$), meets it.

# %% [hint]
# A skeleton, with the blanks left to fill:
#
# ```python
# O, D = ray[:, :2]  # a (2, 3) tensor unpacks into its two rows
# L1, L2 = segment[:, :2]
# mat = ...  # D and L1 - L2 as columns: torch.stack(..., dim=-1)
# if ...:  # the size of torch.linalg.det(mat)
#     return False
# u, v = torch.linalg.solve(mat, ...)
# return bool(...)  # a plain Python bool, not a tensor
# ```

# %% [markdown]
# In the picture above, the first segment sits on the screen itself and the first two rays (through
# $y = -10$ and $y = -7.5$) cross it; the middle ray, through $y = 0$, passes it by.

# %%
assert rays_1d[[0, 1, 4], 1, 1].tolist() == [-10.0, -7.5, 0.0]
assert intersect_ray_1d(rays_1d[0], segments[0]) and intersect_ray_1d(rays_1d[1], segments[0])
assert not intersect_ray_1d(rays_1d[4], segments[0])

# %% [markdown]
# ### Every ray against every segment, without loops
#
# Now write the batched version: for each ray, does it meet *any* segment? Loops over rays and
# segments would work, but a real scene has thousands of each. Instead, build all
# `nrays * nsegments` systems at once:
#
# 1. Give the rays and segments a common shape `(nrays, nsegments, 2)`: `einops.repeat`, or indexing
#    with `None` and broadcasting.
# 2. Stack the columns into matrices of shape `(nrays, nsegments, 2, 2)`. `torch.linalg.solve` treats
#    every leading axis as a batch axis.
# 3. `solve` still refuses a batch that contains a singular matrix. Find them from the determinants,
#    swap them for the identity (`torch.where`) so the solve succeeds, and then mask their (meaningless)
#    answers out.
# 4. Combine the conditions on $u$ and $v$, then reduce over the segments axis with `.any`.


# %% [exercise] intersect_rays_1d difficulty=3 importance=5 minutes=25
def intersect_rays_1d(
    rays: Float[Tensor, "nrays points=2 dims=3"], segments: Float[Tensor, "nsegments points=2 dims=3"]
) -> Bool[Tensor, " nrays"]:
    """For each ray, whether it meets any of the segments (x and y only). No Python loops."""
    raise NotImplementedError()


# %% [hint]
# Aim for the shapes first: each of $O$, $D$, $L_1$, $L_2$ as (nrays, nsegments, 2), the matrices
# (nrays, nsegments, 2, 2), the determinants, $u$ and $v$ as (nrays, nsegments), and the answer
# (nrays,). A pair whose matrix is singular must not reach `solve` as it is, and must not count as a
# hit afterwards, whatever `solve` returned for it.

# %% [hint]
# `einops.repeat` with the pattern `"r d -> r s d"` (and `s=len(segments)`) gives each ray's vector
# once per segment; `"s d -> r s d"` does the same for the segments. A boolean `singular` of shape
# (nrays, nsegments) selects whole matrices in `torch.where` once you give it two trailing axes of
# length 1, and `torch.eye(2)` broadcasts as the replacement.

# %% [markdown]
# Four of the nine rays hit something: the two through the first segment, and two through the third.
# No ray reaches the second segment, which sits at $x = -2$, behind the camera. The plot at the start
# drew each ray out to $6D$, which is far enough to show every crossing: a ray drawn from that far
# end back along $-D$ meets the same segments.

# %%
hits_1d = intersect_rays_1d(rays_1d, segments)
assert hits_1d.tolist() == [True, True, False, False, False, True, True, False, False]
assert intersect_rays_1d(rays_1d, segments[2:]).nonzero().flatten().tolist() == [5, 6]
assert not intersect_rays_1d(rays_1d, segments[1:2]).any()
looking_back = torch.stack([rays_1d[:, 0] + 6 * rays_1d[:, 1], -rays_1d[:, 1]], dim=1)
for segment in segments:
    assert (intersect_rays_1d(looking_back, segment[None]) >= intersect_rays_1d(rays_1d, segment[None])).all()

# %% [markdown]
# ### Try it: where the inequalities matter
#
# Nine rays with directions $(1, y, 0)$, $y = -1, -0.75, \dots, 1$, meet the line $x = 2$ at
# $y = -2, -1.5, \dots, 2$. The segment from $(2, -1)$ to $(2, 1)$ is hit by five of them, and two of
# those pass exactly through its endpoints. Predict how many hits you lose if the conditions on $v$
# are strict ($0 < v < 1$), then try it: make them strict in your `intersect_rays_1d`, run the cell,
# and put them back. The cell shows the same effect without an edit, by shrinking the segment by a
# hair at both ends. (Points exactly on a boundary are rare in a real scene, but rays from a regular
# grid and geometry built from round numbers make them common.)

# %%
fan = make_rays_1d(9, 1.0)
on_the_screen = torch.tensor([[[2.0, -1.0, 0.0], [2.0, 1.0, 0.0]]])
shrunk = on_the_screen + torch.tensor([[[0.0, 1e-4, 0.0], [0.0, -1e-4, 0.0]]])
print(
    "hits:",
    intersect_rays_1d(fan, on_the_screen).nonzero().flatten().tolist(),
    "| on the shrunk segment:",
    intersect_rays_1d(fan, shrunk).nonzero().flatten().tolist(),
)
assert intersect_rays_1d(fan, on_the_screen).nonzero().flatten().tolist() == [2, 3, 4, 5, 6]
assert intersect_rays_1d(fan, shrunk).nonzero().flatten().tolist() == [3, 4, 5]  # the two endpoint rays flip

# %% [markdown]
# ## 2. A camera: rays in 3D, and triangles
#
# A real camera has a 2D screen. `make_rays_2d` returns one ray through each point $(1, y, z)$ of a
# grid: `num_pixels_y` values of $y$ from $-y_\text{limit}$ to $y_\text{limit}$, and `num_pixels_z`
# values of $z$ from $-z_\text{limit}$ to $z_\text{limit}$. The rays are flattened in *row-major*
# order: ray number `y_index * num_pixels_z + z_index` goes through the `y_index`-th value of $y$ and
# the `z_index`-th value of $z$. That way `einops.rearrange(values, "(y z) -> y z", y=num_pixels_y)`
# turns one value per ray into an image.


# %% [exercise] make_rays_2d difficulty=2 importance=4 minutes=10
def make_rays_2d(
    num_pixels_y: int, num_pixels_z: int, y_limit: float, z_limit: float
) -> Float[Tensor, "nrays=num_pixels_y*num_pixels_z points=2 dims=3"]:
    """Rays from the origin through a grid of points (1, y, z) on the screen; ray y_index * num_pixels_z + z_index
    goes through the y_index-th value of y and the z_index-th value of z."""
    raise NotImplementedError()


# %% [hint]
# With the numbering in the docstring, $z$ changes fastest as you walk down the list. Build the rays
# as a grid indexed by (y_index, z_index) first, with the two pixel axes in that order, and flatten
# them last.

# %% [hint]
# Fill a zero tensor of shape `(num_pixels_y, num_pixels_z, 2, 3)`: `linspace(...)[:, None]`
# broadcasts the $y$ values down the first axis, `linspace(...)[None, :]` the $z$ values across the
# second. Then flatten the two pixel axes with `einops.rearrange`, $y$ before $z$ in the group.

# %%
assert make_rays_2d(2, 3, 1.0, 2.0)[:4, 1].tolist() == [[1, -1, -2], [1, -1, 0], [1, -1, 2], [1, 1, -2]]

# %% [markdown]
# ### Where a ray meets a triangle
#
# The points of the triangle $ABC$ are $A + u(B - A) + v(C - A)$ with $u \ge 0$, $v \ge 0$ and
# $u + v \le 1$. (Drop the last condition and you get the whole parallelogram spanned by $B - A$ and
# $C - A$.) The ray $O + sD$ meets the triangle's plane where
#
# $$O + sD = A + u(B - A) + v(C - A) \quad\Longleftrightarrow\quad
# \begin{pmatrix} -D & B - A & C - A \end{pmatrix} \begin{pmatrix} s \\ u \\ v \end{pmatrix} = O - A,$$
#
# a $3 \times 3$ system with columns $-D$, $B - A$ and $C - A$. It is singular exactly when the ray is
# parallel to the plane (or the triangle is degenerate): again a miss, and again $|\det| <$
# `SINGULAR_TOLERANCE` counts as singular. Otherwise the ray hits the
# triangle when $s \ge 0$, $u \ge 0$, $v \ge 0$ and $u + v \le 1$, and $s$ says how far along the ray
# the hit is. Graphics people know this computation as the Möller–Trumbore algorithm, which solves
# the same system in closed form with Cramer's rule.
#
# Here is the camera's grid of rays and a triangle in the plane $x = 2$.

# %%
triangle = torch.tensor([[2.0, -0.6, -0.8], [2.0, 0.7, -0.2], [2.0, -0.3, 0.9]])
A, B, C = triangle

# %%
rays_2d = make_rays_2d(10, 10, 0.3, 0.3)
plot_lines(
    {"rays": ray_segments(rays_2d, 2.2)}, meshes={"triangle": triangle[None]}, title="A 10 x 10 camera and a triangle"
).show()


# %% [exercise] triangle_ray_intersects difficulty=2 importance=4 minutes=15
def triangle_ray_intersects(
    A: Float[Tensor, "dims=3"],
    B: Float[Tensor, "dims=3"],
    C: Float[Tensor, "dims=3"],
    O: Float[Tensor, "dims=3"],
    D: Float[Tensor, "dims=3"],
) -> bool:
    """Whether the ray O + s D (s >= 0) meets the triangle ABC. A ray parallel to its plane counts as a miss,
    and so does a nearly parallel one, whose system has |det| below SINGULAR_TOLERANCE."""
    raise NotImplementedError()


# %% [hint]
# The same three questions as for a segment, one dimension up: is the ray parallel or nearly parallel
# to the plane? If not, is the hit in front of the origin, and inside the triangle rather than just
# the parallelogram? The boundaries count as hits: a ray that starts on the triangle ($s = 0$), or
# meets an edge or a corner.

# %% [hint]
# Stack $-D$, $B - A$ and $C - A$ as the matrix's *columns* (`dim=-1`), in that order, so that
# `torch.linalg.solve` returns $(s, u, v)$ in that order; the right-hand side is $O - A$. Then four
# conditions, combined into one Python bool.

# %% [markdown]
# The ray through the middle of the screen, $(1, 0, 0)$, meets the triangle; the one through the
# screen's corner $(1, 0.3, 0.3)$ passes outside it.

# %%
assert triangle_ray_intersects(A, B, C, torch.zeros(3), torch.tensor([1.0, 0.0, 0.0]))
assert not triangle_ray_intersects(A, B, C, torch.zeros(3), torch.tensor([1.0, 0.3, 0.3]))

# %% [markdown]
# ### A whole picture of one triangle
#
# Batch it over the rays, as you did for segments: matrices of shape `(nrays, 3, 3)`, singular ones
# swapped for the identity and masked out.


# %% [exercise] raytrace_triangle difficulty=3 importance=5 minutes=15
def raytrace_triangle(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangle: Float[Tensor, "points=3 dims=3"]
) -> Bool[Tensor, " nrays"]:
    """For each ray, whether it meets the triangle. No Python loops."""
    raise NotImplementedError()


# %% [hint]
# The one-ray version with a leading axis of length nrays: matrices (nrays, 3, 3), right-hand sides
# (nrays, 3), and $s, u, v$ of shape (nrays,). Combine the conditions with `&` instead of `and`, and
# treat the singular systems as for segments: swapped out before the solve, masked out after.

# %% [hint]
# `rays.unbind(dim=1)` gives $O$ and $D$ as two (nrays, 3) tensors. `einops.repeat` with the pattern
# `"points dims -> points nrays dims"` gives the triangle's corners once per ray, ready to unpack into
# `A, B, C` of the same shape.

# %% [markdown]
# Render it with a $60 \times 60$ camera:

# %%
num_pixels = 60
picture = raytrace_triangle(make_rays_2d(num_pixels, num_pixels, 0.5, 0.5), triangle)
imshow(einops.rearrange(picture.float(), "(y z) -> y z", y=num_pixels), title="One triangle, 60 x 60 pixels").show()

# %% [markdown]
# A sanity check you can do by hand. The screen at $x = 1$ spans $[-0.5, 0.5]^2$, area 1. The
# triangle at $x = 2$ is twice as far away, so it looks half as wide and half as tall: its share of
# the screen is its area divided by $2^2 \times 1$. That is 0.254, and the share of pixels that hit
# it, 0.246, agrees to within the error of sampling a smooth shape on a $60 \times 60$ grid.

# %%
area = torch.linalg.cross(B - A, C - A).norm() / 2
expected_share = area / 2**2
assert abs(expected_share - 0.254) < 0.001
assert abs(picture.float().mean() - 0.246) < 0.001
assert abs(picture.float().mean() - expected_share) < 0.01

# %% [markdown]
# ### Try it: twice as far
#
# Move the triangle back by 2, to the plane $x = 4$. Predict the share of the pixels it covers
# before you run the cell (the same argument as above), and then what happens to both shares at
# twice the resolution.

# %%
moved_back = triangle + torch.tensor([2.0, 0.0, 0.0])
sampling_error = {}
for pixels in (60, 120):
    screen = make_rays_2d(pixels, pixels, 0.5, 0.5)
    near_share = raytrace_triangle(screen, triangle).float().mean()
    far_share = raytrace_triangle(screen, moved_back).float().mean()
    print(f"{pixels} x {pixels} pixels: share {near_share:.4f} at x = 2, {far_share:.4f} at x = 4")
    # Twice the distance: half as wide and half as tall, a quarter of the share.
    assert abs(far_share - area / 4**2) < 0.005 and abs(near_share / far_share - 4) < 0.1
    sampling_error[pixels] = abs(near_share - expected_share)
assert sampling_error[120] < 0.6 * sampling_error[60]  # twice the resolution, about half the error

# %% [markdown]
# ## 3. Rendering a mesh
#
# A mesh is a surface made of triangles. `make_torus` (imported from the solutions module) builds a
# doughnut from a formula: a tube of radius 0.4 around a circle of radius 1 in the $yz$-plane, so the
# camera looks straight through the hole. With 20 steps around the circle and 10 around the tube it
# has $2 \times 20 \times 10 = 400$ triangles.

# %%
torus = make_torus(major_radius=1.0, minor_radius=0.4, n_major=20, n_minor=10)
assert torus.shape == (400, 3, 3)
plot_lines({}, meshes={"torus": torus}, title="The torus: 400 triangles").show()

# %% [markdown]
# To render it, every ray is tested against every triangle, and each ray keeps its nearest hit. First
# compute the *depth* $s$ of every ray-triangle pair, with $\infty$ for a miss: the same system as
# before with two batch axes, `(nrays, ntriangles, 3, 3)`. For our camera's rays $D = (1, y, z)$, so
# $s$ is the distance of the hit from the camera along the $x$-axis.
#
# Memory grows with both axes: at $64 \times 64$ pixels and 400 triangles the batch of matrices alone
# takes about 59 MB of float32. For much bigger scenes you would process the triangles in chunks.

# %%
assert round(64 * 64 * 400 * 3 * 3 * 4 / 1e6) == 59


# %% [exercise] ray_mesh_depths difficulty=3 importance=5 minutes=20
def ray_mesh_depths(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangles: Float[Tensor, "ntriangles points=3 dims=3"]
) -> Float[Tensor, "nrays ntriangles"]:
    """The depth s at which each ray meets each triangle (the hit is at O + s D), or inf where it misses."""
    raise NotImplementedError()


# %% [hint]
# Two batch axes now, rays then triangles: every matrix (nrays, ntriangles, 3, 3). The depth is the
# first unknown of the solution, $s$, kept where the pair is a hit; every other pair, singular ones
# included, gets $\infty$, so that a minimum over triangles ignores it.

# %% [hint]
# `einops.repeat` can move the points axis to the front while it adds the other batch axis: with
# `"r points dims -> points r t dims"` the rays unpack into $O$ and $D$, and with
# `"t points dims -> points r t dims"` the triangles into $A$, $B$, $C$, all (nrays, ntriangles, 3).
# `torch.where` picks between $s$ and `torch.inf`.

# %% [markdown]
# The nearest hit is then a minimum over the triangles axis (a ray that misses everything keeps
# $\infty$).


# %% [exercise] raytrace_mesh difficulty=1 importance=4 minutes=5
def raytrace_mesh(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangles: Float[Tensor, "ntriangles points=3 dims=3"]
) -> Float[Tensor, " nrays"]:
    """The depth of the nearest triangle each ray meets, or inf where it meets none."""
    raise NotImplementedError()


# %% [hint]
# Which axis of the depths holds the triangles? A miss is already $\infty$, so a ray that misses
# everything needs no special case.

# %% [hint]
# `tensor.min(dim=...)` returns both the values and the indices; you want `.values`.

# %% [markdown]
# Move the camera back to $(-3, 0, 0)$ by changing the rays' origins (the directions stay the same),
# and render. To make the depth readable, `depth_picture` draws the nearest surface white, the
# farthest dark grey and the misses black.


# %%
def depth_picture(depth: Float[Tensor, "*frames nrays"], height: int) -> Float[Tensor, "*frames height width"]:
    """Near surfaces bright (1), far ones dim (0.3), misses black (0); one scale for all frames."""
    hit = depth.isfinite()
    near, far = depth[hit].min(), depth[hit].max()
    brightness = torch.where(hit, 1 - 0.7 * (depth - near) / (far - near), 0.0)
    return einops.rearrange(brightness, "... (y z) -> ... y z", y=height)


# %%
camera = make_rays_2d(64, 64, 0.6, 0.6)
camera[:, 0] = torch.tensor([-3.0, 0.0, 0.0])

# %%
depth = raytrace_mesh(camera, torus)
imshow(depth_picture(depth, 64), title="Depth of the torus (near = bright)").show()

# %% [markdown]
# Two checks against the formula. The middle of the picture looks through the hole, so the four
# central pixels are misses. And the nearest point of a smooth torus would be at depth
# $3 - 0.4 = 2.6$; the flat triangles cut inside the round tube, by at most
# $0.4\,(1 - \cos(\pi / 10)) \approx 0.02$ with 10 steps around it, and the nearest hit is indeed
# about 2.62.

# %%
assert not depth.view(64, 64)[31:33, 31:33].isfinite().any()
sag = 0.4 * (1 - math.cos(math.pi / 10))
assert abs(sag - 0.02) < 0.001
assert abs(depth.min() - (2.6 + sag)) < 0.005 and abs(depth.min() - 2.62) < 0.005

# %% [markdown]
# ### The systems in closed form
#
# `torch.linalg.solve` is general: it factorises each $3 \times 3$ matrix as it would a big one.
# For three unknowns, Cramer's rule gives each one directly as a ratio of determinants, and a
# $3 \times 3$ determinant is a *triple product*: with columns $a$, $b$, $c$ it is
# $a \cdot (b \times c)$. Written with cross and dot products, the whole batch needs no solver at
# all. This is the Möller–Trumbore algorithm, a standard ray-triangle test in graphics.
#
# The check runs your function with torch's solvers, determinants and inverses switched off.


# %% [exercise] ray_mesh_depths_closed_form difficulty=3 importance=2 minutes=30
def ray_mesh_depths_closed_form(
    rays: Float[Tensor, "nrays points=2 dims=3"], triangles: Float[Tensor, "ntriangles points=3 dims=3"]
) -> Float[Tensor, "nrays ntriangles"]:
    """The same depths as ray_mesh_depths (inf where a ray misses a triangle), with every system solved in closed
    form: no torch.linalg.solve, no det, no inverse."""
    raise NotImplementedError()


# %% [hint]
# Cramer's rule: each unknown of $Mx = b$ is $\det M_i / \det M$, where $M_i$ is $M$ with its
# $i$-th column replaced by $b$. Here the columns are $-D$, $B - A$, $C - A$ and $b = O - A$. Write
# the four determinants as triple products, then use two facts to make them share work: a triple
# product changes sign when two of its vectors swap, and $a \cdot (b \times c) = b \cdot (c \times a)$.
# Keep the shapes in view: vectors (nrays, ntriangles, 3), everything else (nrays, ntriangles).

# %% [hint]
# With $E_1 = B - A$, $E_2 = C - A$, $T = O - A$, every determinant can be written with just two
# cross products, $P = D \times E_2$ and $Q = T \times E_1$:
# $\det M = E_1 \cdot P$, and the numerators of $s$, $u$, $v$ are $E_2 \cdot Q$, $T \cdot P$ and
# $D \cdot Q$. Check one of them against the definition before you code it. `torch.linalg.cross`
# broadcasts, so a `(nrays, 1, 3)` ray and a `(1, ntriangles, 3)` edge give `(nrays, ntriangles, 3)`.
# Singular pairs still need a stand-in determinant before you divide, and a mask after.

# %% [markdown]
# On the torus the two methods agree, pixel for pixel. Time both on your machine with `%timeit`.

# %%
nearest_closed_form = ray_mesh_depths_closed_form(camera, torus).min(dim=-1).values
assert torch.equal(nearest_closed_form.isinf(), depth.isinf())
assert torch.allclose(nearest_closed_form[depth.isfinite()], depth[depth.isfinite()], atol=1e-5)

# %% [markdown]
# ### Try it: a miss at depth 0
#
# The checks insist that a miss gets depth $\infty$. Predict what the picture would show if
# `ray_mesh_depths` gave misses depth 0 instead. The cell makes that change to your depths (on a
# $48 \times 48$ camera, to save time) and counts.

# %%
camera_48 = make_rays_2d(48, 48, 0.6, 0.6)
camera_48[:, 0] = torch.tensor([-3.0, 0.0, 0.0])
all_depths = ray_mesh_depths(camera_48, torus)
misses_as_zero = torch.where(all_depths.isinf(), 0.0, all_depths).min(dim=-1).values
print(
    f"pixels at depth 0: {(misses_as_zero == 0).float().mean():.0%}; "
    f"pixels that see the torus: {all_depths.isfinite().any(dim=-1).float().mean():.0%}"
)
# Every ray misses most of the 400 triangles, so every pixel's minimum is 0: a blank picture.
assert (misses_as_zero == 0).all() and all_depths.isfinite().any(dim=-1).float().mean() > 0.35

# %% [markdown]
# ## 4. Turning the mesh
#
# To watch the torus spin, rotate its points about the $y$-axis (the picture's vertical axis) and render
# each angle. The rotation by $\theta$ about $y$ keeps $y$ fixed and turns the $zx$-plane:
#
# $$R_y(\theta) = \begin{pmatrix} \cos\theta & 0 & \sin\theta \\ 0 & 1 & 0 \\
#   -\sin\theta & 0 & \cos\theta \end{pmatrix}.$$
#
# By the right-hand rule (thumb along $+y$), a quarter turn sends $z$ to $x$ and $x$ to $-z$.


# %% [exercise] rotation_matrix_y difficulty=1 importance=3 minutes=5
def rotation_matrix_y(theta: float) -> Float[Tensor, "3 3"]:
    """The matrix rotating vectors by `theta` radians about the y-axis (right-hand rule: z turns towards x)."""
    raise NotImplementedError()


# %% [hint]
# The columns of a matrix are where it sends the axes: column 1 is the image of $x$, column 2 of $y$,
# column 3 of $z$. Where should $y$ go? Where do $x$ and $z$ go after a small positive turn, and
# after a quarter turn?

# %% [hint]
# `math.cos` and `math.sin` work on a Python float; `torch.tensor([[...], [...], [...]])` builds the
# matrix (float32 by default) from its rows.

# %%
quarter_turn = rotation_matrix_y(math.pi / 2)
assert torch.allclose(quarter_turn @ torch.tensor([0.0, 0, 1]), torch.tensor([1.0, 0, 0]), atol=1e-7)  # z to x
assert torch.allclose(quarter_turn @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 0, -1]), atol=1e-7)  # x to -z

# %% [markdown]
# A rotation matrix acts on a column vector: $p \mapsto R\,p$. Our points are *rows* of a tensor, and
# for a stack of rows `points @ R.T` does the same thing (transpose both sides of $p' = Rp$).

# %%
points = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
turned_one_by_one = torch.stack([rotation_matrix_y(0.3) @ p for p in points])
assert torch.allclose(points @ rotation_matrix_y(0.3).T, turned_one_by_one)

# %% [markdown]
# `render_rotating` renders `num_frames` frames; frame $k$ turns the mesh by $2\pi k / \text{num\_frames}$,
# so the frames cover one full turn without repeating the first (a loop over frames is fine here).


# %% [exercise] render_rotating difficulty=2 importance=3 minutes=10
def render_rotating(
    rays: Float[Tensor, "nrays points=2 dims=3"],
    triangles: Float[Tensor, "ntriangles points=3 dims=3"],
    num_frames: int,
) -> Float[Tensor, "num_frames nrays"]:
    """Depth images of the mesh turned about the y-axis by 2 pi k / num_frames, for k = 0 .. num_frames - 1."""
    raise NotImplementedError()


# %% [hint]
# Which $k$ gives no turn at all, and is a full turn among the frames? (A full turn is the same
# picture as no turn.) Then, for each frame, turn the mesh's points, which are rows, and render.

# %% [hint]
# `torch.linspace(0, 2 * math.pi, num_frames)` includes $2\pi$, the same picture as frame 0: loop
# `k` over `range(num_frames)` instead. `torch.stack` turns the list of depth images into one tensor.

# %% [markdown]
# Twelve frames, a twelfth of a turn apart, at $48 \times 48$ pixels. Press play:

# %%
frames = render_rotating(camera_48, torus, 12)
fig = px.imshow(
    depth_picture(frames, 48).numpy(),
    animation_frame=0,
    color_continuous_scale="gray",
    zmin=0,
    zmax=1,
    title="The torus turning about the y-axis",
)
fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False).show()

# %% [markdown]
# The animation is a check in itself. Frame 0 looks through the hole and covers the most pixels,
# about 39%. Frame 3 (a quarter turn) sees the torus edge-on: the fewest pixels, about 24%. The torus
# is symmetric under a half turn about $y$, so frame 6 is the same picture as frame 0.

# %%
coverage = frames.isfinite().float().mean(dim=-1)
assert coverage[0] > coverage.max() - 0.002 and coverage[3] < coverage.min() + 0.002
assert abs(coverage[0] - 0.39) < 0.01 and abs(coverage[3] - 0.24) < 0.01
same = (frames[6] == frames[0]) | ((frames[6] - frames[0]).abs() < 1e-3)
assert same.float().mean() > 0.99

# %% [markdown]
# ### Try it: the forgotten transpose
#
# Suppose `render_rotating` applied the matrix to the rows without transposing it, `torus @ R`.
# Would you see the mistake in a single frame? Predict which correct frame the wrong frame 2 matches,
# and how it relates to the correct frame 2. (The torus and the camera's grid are both symmetric
# under $z \to -z$.)


# %%
def close_enough(first: Tensor, second: Tensor) -> float:
    """The share of pixels whose depths agree (both misses, or within 0.001)."""
    return ((first == second) | ((first - second).abs() < 1e-3)).float().mean().item()


untransposed = raytrace_mesh(camera_48, torus @ rotation_matrix_y(2 * math.pi * 2 / 12))
mirrored = einops.rearrange(frames[2], "(y z) -> y z", y=48).flip(dims=[1]).flatten()  # z -> -z
print(
    f"agrees with frame 2: {close_enough(untransposed, frames[2]):.0%}, "
    f"with frame 10: {close_enough(untransposed, frames[10]):.0%}, "
    f"with frame 2 mirrored: {close_enough(untransposed, mirrored):.0%}"
)
# R without .T turns by -theta, the same as 2 pi - theta (frame 10) and, by the symmetry, frame 2 in a mirror:
# each frame looks plausible, and only the direction of the spin gives the mistake away.
assert close_enough(untransposed, frames[10]) > 0.99 and close_enough(untransposed, mirrored) > 0.99
assert close_enough(untransposed, frames[2]) < 0.7

# %% [markdown]
# ## 5. Bonus: lighting and shadows
#
# A depth map is not how we see things. A matte surface looks bright when it faces the light and
# darker as it turns away: by Lambert's cosine law, the light it sends back is proportional to
# $\cos\theta = \hat n \cdot \hat l$, where $\hat n$ is the unit normal of the surface and $\hat l$ the
# unit vector towards the light. When $\hat n \cdot \hat l < 0$ the light is behind the surface, which
# gets none: clamp at 0.
#
# A triangle's normal is the cross product of two of its edges, $(B - A) \times (C - A)$, scaled to
# length 1. Its sign depends on the order of the corners: listing them the other way round flips it.


# %% [exercise] triangle_normals difficulty=1 importance=3 minutes=5
def triangle_normals(triangles: Float[Tensor, "ntriangles points=3 dims=3"]) -> Float[Tensor, "ntriangles dims=3"]:
    """The unit normal of each triangle, on the side from which its corners A, B, C run anticlockwise."""
    raise NotImplementedError()


# %% [hint]
# Two edges from the same corner span the triangle's plane: which vector is perpendicular to both,
# with its sign set by the order of the corners? Then scale each one to length 1, over the axis of
# the coordinates, adding nothing to the length: a tiny triangle still has a unit normal.

# %% [hint]
# `torch.linalg.cross(u, v, dim=-1)` and `tensor.norm(dim=-1, keepdim=True)`.

# %%
# Listing the corners the other way round flips every normal.
assert torch.allclose(triangle_normals(torus.flip(dims=[1])), -triangle_normals(torus))

# %% [markdown]
# `make_torus` lists every triangle's corners so that its normal points out of the tube. Check: the
# normal of each triangle points away from the centre line of the tube (the circle of radius 1 in
# the $yz$-plane) at the triangle's centre.

# %%
normals = triangle_normals(torus)
centres = torus.mean(dim=1)
on_centre_line = centres * torch.tensor([0.0, 1.0, 1.0])
on_centre_line = on_centre_line / on_centre_line.norm(dim=-1, keepdim=True)
assert ((normals * (centres - on_centre_line)).sum(dim=-1) > 0).all()

# %% [markdown]
# Not every mesh is so tidy, so `shade_lambert` should not trust the winding. A surface the camera can
# see faces the ray, $\hat n \cdot D < 0$; where a normal points the other way, flip it first. Then:
#
# 1. find each ray's nearest triangle (`argmin` of `ray_mesh_depths` over the triangles);
# 2. take that triangle's normal, turned to face the ray;
# 3. brightness $= \max(0, \hat n \cdot \hat l)$ with $\hat l$ = `light` scaled to length 1;
# 4. 0 for rays that hit nothing.


# %% [exercise] shade_lambert difficulty=3 importance=2 minutes=20
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
    raise NotImplementedError()


# %% [hint]
# Which triangle does each ray see, and which rays see none? `argmin` over a row of all-`inf` depths
# returns 0, so the misses pick up triangle 0's normal: that is why step 4 matters. Keep the shapes
# in view: one normal per ray, (nrays, 3), and one brightness per ray.

# %% [hint]
# A normal faces away from the ray where its dot product with the ray's $D$ is positive: that is a
# boolean per ray, and `torch.where` flips those rows once you give the mask an axis for the
# coordinates. The dot product of every normal with the unit light is one matrix product.

# %%
assert torch.full((2, 3), torch.inf).argmin(dim=-1).tolist() == [0, 0]

# %% [markdown]
# Light the torus from the camera's side, above and to the left: towards the light is $-x$ (back
# towards the camera), $-y$ (up the picture) and $-z$ (left).

# %%
light = torch.tensor([-1.0, -1.0, -1.0])
shaded = shade_lambert(camera, torus, light)
imshow(einops.rearrange(shaded, "(y z) -> y z", y=64), title="Lambert shading, light from the upper left").show()

# %% [markdown]
# The brightness lies between 0 and 1, and it is 0 wherever the depth picture shows a miss.
# About 7% of the pixels that hit the torus come out black: they see surfaces turned away from the
# light. Since this torus is wound outwards and closed, every nearest hit already faces the camera,
# and the flip in step 2 never fires.

# %%
hit = depth.isfinite()
assert shaded.min() >= 0 and shaded.max() <= 1 and (shaded[~hit] == 0).all()
assert abs((shaded[hit] == 0).float().mean() - 0.07) < 0.01
nearest = ray_mesh_depths(camera, torus).argmin(dim=-1)
assert ((normals[nearest] * camera[:, 1]).sum(dim=-1)[hit] < 0).all()
assert (normals[nearest] @ light <= 0)[hit & (shaded == 0)].all()  # the black pixels face away from the light

# %% [markdown]
# Finally, the turning torus again, lit this time: the first half turn in six frames, with the light
# fixed relative to the camera.

# %%
lit_frames = torch.stack(
    [shade_lambert(camera_48, torus @ rotation_matrix_y(2 * math.pi * k / 12).T, light) for k in range(6)]
)
fig = px.imshow(
    einops.rearrange(lit_frames, "frame (y z) -> frame y z", y=48).numpy(),
    facet_col=0,
    color_continuous_scale="gray",
    zmin=0,
    zmax=1,
    title="Lit frames, a twelfth of a turn apart",
)
fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False).show()

# %% [markdown]
# ### Shadows
#
# Lambert's law says how a surface turned towards the light is lit, but not whether the light
# reaches it: another part of the mesh may be in the way. A second ray answers that, cast from the
# point each camera ray hits, towards the light. The light is far away (like the sun), so every point
# sees it in the same direction, `light`.
#
# The trap in this exercise: the shadow ray starts *on* a triangle, and rounding puts the start a
# hair in front of or behind it, so the shadow ray may meet its own surface at a distance near 0.
# Blockers closer than `bias` (by default `SHADOW_BIAS`, $10^{-3}$, imported above) do not count.


# %% [exercise] shade_with_shadows difficulty=4 importance=2 minutes=30
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
    raise NotImplementedError()


# %% [hint]
# You already have the pieces: follow one camera ray. Where is the point it hits, and what is the
# shadow ray (its origin and its direction, and what its depth means)? Which of that ray's hits
# block the light: not a miss, not the surface it starts on. Then batch it: one shadow ray per camera
# ray, against every triangle. A camera ray that hits nothing has no point, but it still needs some
# finite origin for its shadow ray.

# %% [hint]
# A skeleton, with the blanks left to fill:
#
# ```python
# depth = ...  # (nrays,), inf for a miss: you wrote this
# points = ...  # O + depth * D, with the misses' inf replaced first (inf * 0 is nan)
# towards_light = ...  # scaled to length 1, so that depths along it are distances comparable with bias
# shadow_depths = ...  # (nrays, ntriangles): ray_mesh_depths of a batch of (nrays, 2, 3) shadow rays
# blocked = ...  # (nrays,): any triangle met, further away than bias
# return ...  # shade_lambert's brightness where not blocked
# ```

# %% [markdown]
# Put a wall behind the torus, at $x = 3$, and light the scene from the camera's side, straight
# along $-x$. The light's rays are parallel to the $x$-axis, so the torus's shadow on the wall is its
# outline seen along $x$: the ring of radii $0.6$ and $1.4$ around the axis. Through the hole, the
# camera sees a lit disc in the middle of the wall, ringed by the shadow; around the torus the wall
# is in full light. (The flat faces move the
# ring's edges inwards by at most $1.4\,(1 - \cos(\pi / 20)) \approx 0.017$.)

# %%
assert SHADOW_BIAS == 1e-3
wall = torch.tensor([[[3.0, -5, -5], [3.0, 5, -5], [3.0, -5, 5]], [[3.0, 5, 5], [3.0, -5, 5], [3.0, 5, -5]]])
scene = torch.cat([torus, wall])
camera_32 = make_rays_2d(32, 32, 0.6, 0.6)
camera_32[:, 0] = torch.tensor([-3.0, 0.0, 0.0])
from_the_camera = torch.tensor([-1.0, 0.0, 0.0])
with_shadows = shade_with_shadows(camera_32, scene, from_the_camera)
imshow(einops.rearrange(with_shadows, "(y z) -> y z", y=32), title="The torus's shadow on a wall").show()

# %%
scene_depth = raytrace_mesh(camera_32, scene)
on_wall = (scene_depth - 6).abs() < 1e-4  # the wall at x = 3 is 6 from the camera, and the torus nearer
radius = (scene_depth[:, None] * camera_32[:, 1, 1:]).norm(dim=-1)  # the wall point's distance from the x-axis
lit = with_shadows > 0
assert ((radius > 0.6 - 0.017) & (radius < 1.4))[on_wall & ~lit].all()
assert ((radius < 0.6) | (radius > 1.4 - 0.017))[on_wall & lit].all()
assert (on_wall & ~lit).sum() > 40 and (on_wall & lit & (radius < 0.6)).sum() > 15

# %% [markdown]
# ### Try it: no bias
#
# Predict what happens with `bias=0`: which pixels turn black, and roughly how many? Then look at
# the picture: this speckle is known in graphics as *shadow acne*.

# %%
acne = shade_with_shadows(camera_32, scene, from_the_camera, bias=0.0)
flipped = lit & (acne == 0)
print(f"lit pixels that turn black: {flipped.sum()} of {lit.sum()}")
imshow(einops.rearrange(acne, "(y z) -> y z", y=32), title="bias = 0: shadow acne").show()
# Rounding puts some shadow rays' starts a hair behind the surface they lie on, so they meet it again at a depth
# just above 0: a scatter of black pixels over surfaces in full light.
assert flipped.float().sum() > 0.05 * lit.sum()
assert not (acne > with_shadows).any()  # a smaller bias only ever adds blockers

# %% [markdown]
# ## Summary
#
# You built a renderer out of one idea, "solve a small linear system per ray and object", and one
# technique, batching:
#
# - **Geometry as linear algebra.** Ray against segment is a $2 \times 2$ system, ray against triangle
#   a $3 \times 3$ one. The inequalities on the solution ($u \ge 0$, $0 \le v \le 1$, $u + v \le 1$,
#   ...) decide hit or miss, and a singular matrix means "parallel".
# - **The batching recipe.** Give every input the same leading batch axes (`einops.repeat` or
#   broadcasting), do the per-item maths once on the whole batch, patch the items where it would fail
#   (singular matrices swapped for the identity) and mask their answers out afterwards, then reduce
#   over the axis you no longer need (`any`, `min`, `argmin`). For small systems a closed form
#   (Cramer's rule, as cross and dot products) does the same without a solver.
# - **Boundaries and rounding.** Points exactly on an edge, nearly parallel pairs and a shadow ray
#   that starts on its own surface all need a decision, a tolerance or a bias; the try-it cells showed
#   what changes when one is missing.
# - **Checks you can reason about.** The triangle's share of the pixels matched its projected area,
#   and fell to a quarter at twice the distance; the torus's nearest depth matched the formula to
#   within the error of its flat faces; the rotation showed the symmetry it should; the shadow on the
#   wall matched the torus's outline. Predicting a number and asserting it catches bugs that a glance
#   at a plot will not (the forgotten transpose gives frames that each look right).
#
# **Going further.** Give the light a position instead of a direction, so that shadows spread out
# from it. Give the camera a field of view: the screen's size is set by an angle, not by `y_limit`.
# Skip the triangles whose bounding box a ray cannot reach, or process them in chunks, to render
# larger meshes.
