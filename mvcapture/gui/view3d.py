"""The 3D view: the views' aligned skeletons in their colours, joints coloured by disagreement, the fused
(two-view) skeleton in its own colour when shown, a floor.

Poses arrive in view 0's camera frame (x right, y down, z forward, metres); they are drawn z-up, so
the floor grid lies under the athlete's feet and the mouse orbits (drag) and zooms (wheel). Bones are
thin prisms and joints small spheres in one mesh per skeleton: wide GL lines are not available on every
driver (core profiles draw them 1 px wide).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph.opengl as gl
from pyqtgraph.opengl.GLViewWidget import GLViewMixin
from PySide6 import QtCore, QtGui, QtOpenGL, QtWidgets

from mvcapture.core.skeleton import H36M17_BONES, H36M17_PARENTS
from mvcapture.gui.theme import FUSED_COLOR, FUSED_FILLED_COLOR, Theme, disagreement_rgba, view_color

# pyqtgraph caches compiled shader programs across GL widgets: the widgets' contexts must share
# resources, which Qt only arranges when asked before the application object exists.
if QtCore.QCoreApplication.instance() is None:
    QtCore.QCoreApplication.setAttribute(QtCore.Qt.ApplicationAttribute.AA_ShareOpenGLContexts)

_BONES = np.array(H36M17_BONES)
_FEET = [3, 6]
BONE_RADIUS_M = 0.022
# The fused skeleton is drawn thinner than the lifts: where a lift agrees with it, the lift (joints green)
# covers it, and the violet shows exactly where they part.
FUSED_BONE_RADIUS_M = 0.014
FUSED_JOINT_RADIUS_M = 0.028
JOINT_RADIUS_M = 0.035
SELECTED_JOINT_RADIUS_M = 0.06
_SIDES = 6
_SPHERE = gl.MeshData.sphere(rows=5, cols=8, radius=1.0)
_SPHERE_VERTS = _SPHERE.vertexes()
_SPHERE_FACES = _SPHERE.faces()


def camera_to_display(points_m: np.ndarray) -> np.ndarray:
    """(..., 3) camera frame (y down, z forward) -> display frame (x right, y forward, z up)."""
    p = np.asarray(points_m, float)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def _prism_faces(num_bones: int) -> np.ndarray:
    k = np.arange(_SIDES)
    k1 = (k + 1) % _SIDES
    one = np.concatenate([np.stack([k, k1, _SIDES + k], 1), np.stack([k1, _SIDES + k1, _SIDES + k], 1)])
    return (one[None] + (2 * _SIDES * np.arange(num_bones))[:, None, None]).reshape(-1, 3)


_PRISM_FACES = _prism_faces(len(_BONES))


def skeleton_mesh(pose: np.ndarray, bone_rgba: np.ndarray, joint_rgba: np.ndarray,
                  joint_radius_m: np.ndarray, bone_radius_m: float = BONE_RADIUS_M
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (N, 3), faces (F, 3) and face colours (F, 4) of one skeleton in display coordinates.

    Args:
        pose: (17, 3) display coordinates, metres.
        bone_rgba: (4,) colour of all bones; joint_rgba: (17, 4) joint colours; joint_radius_m: (17,).
        bone_radius_m: thickness of the bones.
    """
    a, b = pose[_BONES[:, 0]], pose[_BONES[:, 1]]
    axis = b - a
    axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-9)
    helper = np.where(np.abs(axis[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(axis, helper)
    e1 /= np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-9)
    e2 = np.cross(axis, e1)
    angles = 2 * np.pi * np.arange(_SIDES) / _SIDES
    ring = bone_radius_m * (np.cos(angles)[None, :, None] * e1[:, None] + np.sin(angles)[None, :, None] * e2[:, None])
    bone_verts = np.concatenate([a[:, None] + ring, b[:, None] + ring], axis=1).reshape(-1, 3)
    sphere_verts = (pose[:, None] + joint_radius_m[:, None, None] * _SPHERE_VERTS[None]).reshape(-1, 3)
    sphere_faces = (_SPHERE_FACES[None] + (len(_SPHERE_VERTS) * np.arange(17))[:, None, None]).reshape(-1, 3)
    verts = np.concatenate([bone_verts, sphere_verts])
    faces = np.concatenate([_PRISM_FACES, sphere_faces + len(bone_verts)])
    colors = np.concatenate([np.tile(bone_rgba, (len(_PRISM_FACES), 1)),
                             np.repeat(joint_rgba, len(_SPHERE_FACES), axis=0)])
    return verts.astype(np.float32), faces.astype(np.uint32), colors.astype(np.float32)


class GLSceneWindow(GLViewMixin, QtOpenGL.QOpenGLWindow):
    """pyqtgraph's 3D scene (GLViewWidget's mixin) in its own native GL window.

    Embedded with a window container, it renders only its own rectangle: a QOpenGLWidget instead makes
    Qt compose the whole main window through OpenGL on every repaint (5x the cost per frame with
    software GL). It never takes keyboard focus, so the window's shortcuts keep working over it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QtCore.Qt.WindowType.WindowDoesNotAcceptFocus)

    def devicePixelRatioF(self) -> float:
        return float(self.devicePixelRatio())


class Skeleton3DView(QtWidgets.QWidget):
    """Orbitable 3D view of V aligned skeletons (drag: orbit, wheel: zoom, middle-drag: pan).

    Args:
        num_views: how many skeletons (one colour each).
        floor_m: height of the floor in the display frame (z, metres); the pelvis is at 0.

    Attributes:
        scene: the `GLSceneWindow` (pyqtgraph GLViewMixin API: setCameraPosition, items, ...).
    """

    def __init__(self, num_views: int, floor_m: float = -0.95, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumSize(200, 150)
        self.scene = GLSceneWindow()
        container = QtWidgets.QWidget.createWindowContainer(self.scene, self)
        container.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(container)
        self.grid = gl.GLGridItem()
        self.grid.setSize(4, 4)
        self.grid.setSpacing(0.5, 0.5)
        self.grid.translate(0, 0, floor_m)
        self.scene.addItem(self.grid)
        self.skeletons: list[gl.GLMeshItem] = []
        self._bone_rgba = [np.array(view_color(v) + (255,), float) / 255 for v in range(num_views)]
        for _ in range(num_views):
            mesh = gl.GLMeshItem(smooth=False, shader=None, glOptions="opaque")  # flat, exact colours
            self.scene.addItem(mesh)
            self.skeletons.append(mesh)
        self.fused = gl.GLMeshItem(smooth=False, shader=None, glOptions="opaque")
        self.fused.setVisible(False)
        self.scene.addItem(self.fused)
        self.scene.setCameraPosition(pos=QtGui.QVector3D(0, 0, -0.15), distance=2.7, elevation=14, azimuth=-65)
        self.set_poses(np.zeros((num_views, 17, 3)), np.zeros(17))
        for mesh in self.skeletons:  # nothing to show until the first real poses arrive
            mesh.setVisible(False)

    @staticmethod
    def floor_height(aligned_m: np.ndarray) -> float:
        """Floor height (display z) for a whole sequence (V, T, 17, 3): just under the lowest foot."""
        feet = camera_to_display(aligned_m[..., _FEET, :])[..., 2]
        return float(np.nanpercentile(feet, 2)) - 0.03 if np.isfinite(feet).any() else -0.95

    def set_theme(self, theme: Theme) -> None:
        self.scene.setBackgroundColor(theme.view3d_background)
        self.grid.setColor(theme.grid)

    @staticmethod
    def _joint_radii(selected_joint: int | None) -> np.ndarray:
        radius = np.full(17, JOINT_RADIUS_M)
        if selected_joint is not None:
            radius[selected_joint] = SELECTED_JOINT_RADIUS_M
        return radius

    def set_poses(self, poses_m: np.ndarray, residual_mm: np.ndarray, selected_joint: int | None = None) -> None:
        """(V, 17, 3) aligned poses (view 0 camera frame) of the current frame and the mm their joints are
        coloured by: (17,) residuals shared by all views, or (V, 17) one row per view."""
        residual_mm = np.asarray(residual_mm, float)
        radius = self._joint_radii(selected_joint)
        for v, pose in enumerate(poses_m):
            joint_rgba = disagreement_rgba(residual_mm[v] if residual_mm.ndim == 2 else residual_mm)
            p = np.nan_to_num(camera_to_display(pose))
            verts, faces, colors = skeleton_mesh(p, self._bone_rgba[v], joint_rgba, radius)
            self.skeletons[v].setMeshData(vertexes=verts, faces=faces, faceColors=colors)
            self.skeletons[v].setVisible(True)

    def set_fused(self, pose_m: np.ndarray | None, from_stereo: np.ndarray | None = None,
                  selected_joint: int | None = None) -> None:
        """The fused (two-view) skeleton of the current frame, or None to hide it.

        Args:
            pose_m: (17, 3) view 0's camera frame, metres; NaN joints (unknown) are left out, with the bones
                to them.
            from_stereo: (17,) bool, joints triangulated by the two views (the others, filled from one
                view's lift, get a paler tint); None = all.
        """
        known = np.isfinite(pose_m).all(-1) if pose_m is not None else np.zeros(17, bool)
        if not known[0]:  # no pelvis: nothing to hang the skeleton on
            self.fused.setVisible(False)
            return
        p = camera_to_display(pose_m)
        for j in range(1, 17):  # parents come first: an unknown joint collapses onto its parent
            if not known[j]:
                p[j] = p[H36M17_PARENTS[j]]
        radius = np.where(known, np.where(np.arange(17) == selected_joint, SELECTED_JOINT_RADIUS_M,
                                          FUSED_JOINT_RADIUS_M), 0.0)
        stereo = known if from_stereo is None else np.asarray(from_stereo, bool)
        joint_rgba = np.where(stereo[:, None], np.array(FUSED_COLOR + (255,)) / 255,
                              np.array(FUSED_FILLED_COLOR + (255,)) / 255)
        verts, faces, colors = skeleton_mesh(p, np.array(FUSED_COLOR + (255,), float) / 255, joint_rgba, radius,
                                             FUSED_BONE_RADIUS_M)
        self.fused.setMeshData(vertexes=verts, faces=faces, faceColors=colors)
        self.fused.setVisible(True)

    def grab_image(self) -> QtGui.QImage:
        """The scene as drawn (the GL window's framebuffer)."""
        return self.scene.grabFramebuffer()

    def render_rgb(self) -> np.ndarray:
        """The scene as drawn, (H, W, 3) uint8 RGB (tests and screenshots)."""
        image = self.grab_image().convertToFormat(QtGui.QImage.Format.Format_RGB888)
        rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
        return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()
