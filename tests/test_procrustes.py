"""Similarity Procrustes against independent references (known transforms, a numpy Umeyama loop,
scipy's align_vectors), gradients (gradcheck, degenerate inputs), dtypes, devices and bad input."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mvcapture.core.procrustes import procrustes, procrustes_np, procrustes_torch, rotation_angle_deg


def random_similarity(n, seed):
    rng = np.random.default_rng(seed)
    R = Rotation.random(n, random_state=seed).as_matrix()
    s = rng.uniform(0.5, 2.0, n)
    t = rng.normal(size=(n, 3))
    return s, R, t


def umeyama_loop(src, dst, w=None):
    """Independent reference: per sequence, hand-written weighted Umeyama with numpy (row vectors)."""
    out = []
    for i in range(src.shape[0]):
        x, y = src[i].reshape(-1, 3), dst[i].reshape(-1, 3)
        wi = np.ones(len(x)) if w is None else w[i].reshape(-1)
        wi = wi / wi.sum()
        mx, my = wi @ x, wi @ y
        xc, yc = x - mx, y - my
        U, S, Vt = np.linalg.svd((xc * wi[:, None]).T @ yc)
        D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
        R = U @ D @ Vt
        s = np.trace(np.diag(S) @ D) / (wi * (xc ** 2).sum(1)).sum()
        out.append((s, R, my - s * mx @ R))
    return out


def test_known_similarity_is_recovered_float64():
    rng = np.random.default_rng(0)
    src = rng.normal(scale=0.3, size=(4, 30, 17, 3))
    s, R, t = random_similarity(4, 1)
    dst = s[:, None, None, None] * src @ R[:, None] + t[:, None, None, :]
    out = procrustes(torch.from_numpy(src), torch.from_numpy(dst))
    np.testing.assert_allclose(out.s.numpy(), s, atol=1e-5)
    np.testing.assert_allclose(out.R.numpy(), R, atol=1e-5)
    np.testing.assert_allclose(out.t.numpy(), t, atol=1e-5)
    np.testing.assert_allclose(out.aligned.numpy(), dst, atol=1e-9)


def test_residual_matches_noise_level():
    rng = np.random.default_rng(2)
    src = rng.normal(scale=0.3, size=(3, 100, 17, 3))
    s, R, t = random_similarity(3, 3)
    sigma = 1e-3
    dst = s[:, None, None, None] * src @ R[:, None] + t[:, None, None, :] + rng.normal(scale=sigma, size=src.shape)
    out = procrustes_np(src, dst)
    rms = np.sqrt(((out.aligned - dst) ** 2).mean())
    assert 0.95 * sigma < rms < 1.02 * sigma
    np.testing.assert_allclose(out.s, s, rtol=1e-3)
    np.testing.assert_allclose(out.R, R, atol=1e-3)


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_bruteforce_umeyama_and_scipy(weighted):
    rng = np.random.default_rng(4)
    src = rng.normal(size=(5, 8, 17, 3))
    dst = rng.normal(size=(5, 8, 17, 3)) + src @ Rotation.random(random_state=5).as_matrix()
    w = rng.uniform(0, 1, size=(5, 8, 17)) if weighted else None
    out = procrustes_np(src, dst, w)
    for i, (s, R, t) in enumerate(umeyama_loop(src, dst, w)):
        np.testing.assert_allclose(out.s[i], s, rtol=1e-10)
        np.testing.assert_allclose(out.R[i], R, atol=1e-10)
        np.testing.assert_allclose(out.t[i], t, atol=1e-10)
        # scipy solves the rotation alone (column vectors: y ≈ C x, so R = Cᵀ)
        x, y = src[i].reshape(-1, 3), dst[i].reshape(-1, 3)
        wi = np.ones(len(x)) if w is None else w[i].reshape(-1)
        mx, my = wi @ x / wi.sum(), wi @ y / wi.sum()
        C, _ = Rotation.align_vectors(y - my, x - mx, weights=wi)
        np.testing.assert_allclose(out.R[i], C.as_matrix().T, atol=1e-8)


def test_frame_mode_is_one_transform_per_frame():
    rng = np.random.default_rng(6)
    src = rng.normal(size=(2, 6, 17, 3))
    dst = rng.normal(size=(2, 6, 17, 3))
    out = procrustes_np(src, dst, mode="frame")
    assert out.s.shape == (2, 6) and out.R.shape == (2, 6, 3, 3) and out.t.shape == (2, 6, 3)
    ref = umeyama_loop(src.reshape(12, 1, 17, 3), dst.reshape(12, 1, 17, 3))
    np.testing.assert_allclose(out.s.reshape(12), [r[0] for r in ref], rtol=1e-10)
    np.testing.assert_allclose(out.R.reshape(12, 3, 3), np.stack([r[1] for r in ref]), atol=1e-10)


def test_reflection_is_never_returned():
    rng = np.random.default_rng(7)
    src = rng.normal(size=(1, 10, 17, 3))
    mirror = np.diag([1.0, 1.0, -1.0])
    dst = src @ mirror  # best orthogonal map is a reflection: must get the best proper rotation instead
    out = procrustes_np(src, dst)
    assert np.linalg.det(out.R[0]) == pytest.approx(1.0)
    C, _ = Rotation.align_vectors(dst[0].reshape(-1, 3) - dst[0].reshape(-1, 3).mean(0),
                                  src[0].reshape(-1, 3) - src[0].reshape(-1, 3).mean(0))
    np.testing.assert_allclose(out.R[0], C.as_matrix().T, atol=1e-8)
    s_ref = umeyama_loop(src, dst)[0][0]
    assert out.s[0] == pytest.approx(s_ref, rel=1e-10)


def test_zero_weight_joints_do_not_steer_the_fit():
    rng = np.random.default_rng(8)
    src = rng.normal(size=(2, 5, 17, 3))
    s, R, t = random_similarity(2, 9)
    dst = s[:, None, None, None] * src @ R[:, None] + t[:, None, None, :]
    corrupted = dst.copy()
    corrupted[:, :, 3] += 100.0
    w = np.ones((2, 5, 17))
    w[:, :, 3] = 0
    out = procrustes_np(src, corrupted, w)
    np.testing.assert_allclose(out.R, R, atol=1e-9)
    np.testing.assert_allclose(out.s, s, rtol=1e-9)


def test_no_scale_is_rigid():
    rng = np.random.default_rng(10)
    src = rng.normal(size=(2, 4, 17, 3))
    s, R, t = random_similarity(2, 11)
    dst = s[:, None, None, None] * src @ R[:, None] + t[:, None, None, :]
    out = procrustes_np(src, dst, allow_scale=False)
    np.testing.assert_allclose(out.s, 1.0)
    np.testing.assert_allclose(out.R, R, atol=1e-9)


@pytest.mark.parametrize("mode", ["sequence", "frame"])
def test_gradcheck_float64(mode):
    g = torch.Generator().manual_seed(0)
    src = torch.randn(2, 3, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    dst = torch.randn(2, 3, 5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.rand(2, 3, 5, dtype=torch.float64, generator=g).add(0.1).requires_grad_()

    def fn(a, b, w):
        out = procrustes_torch(a, b, w, mode=mode)
        return out.aligned, out.s, out.R, out.t

    assert torch.autograd.gradcheck(fn, (src, dst, w))
    assert torch.autograd.gradcheck(lambda a, b: procrustes_torch(a, b, mode=mode, allow_scale=False).aligned,
                                    (src, dst))


def _degenerate_cases():
    rng = np.random.default_rng(12)
    pose = rng.normal(size=(17, 3))
    tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)  # isotropic: σ1 = σ2 = σ3
    line = np.linspace(0, 1, 17)[:, None] * np.array([1.0, 2.0, 0.5])  # rank 1: σ2 = σ3 = 0
    return {
        "src collapsed": (np.zeros((2, 4, 17, 3)), rng.normal(size=(2, 4, 17, 3))),
        "both collapsed": (np.ones((2, 4, 17, 3)), np.ones((2, 4, 17, 3))),
        "dst collapsed": (rng.normal(size=(2, 4, 17, 3)), np.zeros((2, 4, 17, 3))),
        "zero motion": (np.broadcast_to(pose, (2, 4, 17, 3)).copy(), np.broadcast_to(pose, (2, 4, 17, 3)).copy()),
        "repeated singular values": (np.broadcast_to(tetra, (2, 4, 4, 3)).copy(),
                                     np.broadcast_to(tetra, (2, 4, 4, 3)).copy()),
        "collinear": (np.broadcast_to(line, (2, 4, 17, 3)).copy(), np.broadcast_to(line, (2, 4, 17, 3)).copy()),
    }


@pytest.mark.parametrize("case", list(_degenerate_cases()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["sequence", "frame"])
def test_degenerate_inputs_give_finite_gradients(case, dtype, mode):
    src_np, dst_np = _degenerate_cases()[case]
    src = torch.tensor(src_np, dtype=dtype, requires_grad=True)
    dst = torch.tensor(dst_np, dtype=dtype, requires_grad=True)
    w = torch.ones(src.shape[:-1], dtype=dtype, requires_grad=True)
    out = procrustes_torch(src, dst, w, mode=mode)
    loss = torch.linalg.vector_norm(out.aligned - dst, dim=-1).mean() + out.s.sum() + out.R.sum() + out.t.sum()
    grads = torch.autograd.grad(loss, (src, dst, w))
    assert torch.isfinite(loss)
    for g in grads:
        assert torch.isfinite(g).all()


def test_float32_and_numpy_entry_agree_with_float64():
    rng = np.random.default_rng(13)
    src = rng.normal(scale=0.3, size=(3, 20, 17, 3))
    dst = rng.normal(scale=0.3, size=(3, 20, 17, 3)) + 2.0
    ref = procrustes_torch(torch.from_numpy(src), torch.from_numpy(dst))
    out32 = procrustes_np(src.astype(np.float32), dst.astype(np.float32))
    assert out32.aligned.dtype == np.float32 and out32.R.dtype == np.float32
    np.testing.assert_allclose(out32.aligned, ref.aligned.numpy(), atol=1e-5)
    out = procrustes(src, dst)  # numpy dispatch
    assert isinstance(out.aligned, np.ndarray)
    np.testing.assert_allclose(out.aligned, ref.aligned.numpy(), atol=1e-12)


@pytest.mark.parametrize("offset_m", [0.0, 1.0, 30.0, 1000.0])
def test_float32_far_from_the_origin_matches_the_float64_reference(offset_m):
    """The unweighted fit uses raw moments (no centred copy) only where cancellation is harmless: poses
    kilometres from the origin in float32 still match the hand-written float64 Umeyama."""
    rng = np.random.default_rng(21)
    src = rng.normal(scale=0.3, size=(4, 30, 17, 3)) + offset_m * np.array([1.0, -0.5, 2.0])
    s, R, t = random_similarity(4, 22)
    dst = s[:, None, None, None] * src @ R[:, None] + t[:, None, None] + rng.normal(scale=0.01, size=src.shape)
    out = procrustes_np(src.astype(np.float32), dst.astype(np.float32))
    for i, (s_ref, R_ref, t_ref) in enumerate(umeyama_loop(src, dst)):
        assert out.s[i] == pytest.approx(s_ref, rel=1e-4)
        np.testing.assert_allclose(out.R[i], R_ref, atol=1e-4)
    aligned_ref = np.stack([s_ * x @ R_ + t_ for (s_, R_, t_), x in zip(umeyama_loop(src, dst), src)])
    spread = np.abs(aligned_ref - aligned_ref.mean((1, 2), keepdims=True)).max()
    representable = 8 * np.finfo(np.float32).eps * np.abs(aligned_ref).max()  # float32 spacing out there
    assert np.abs(out.aligned - aligned_ref).max() < 1e-4 * spread + representable


def test_mixing_torch_and_numpy_says_so():
    with pytest.raises(ValueError, match=r"dst must be a torch tensor .* \(torch and numpy cannot be mixed"):
        procrustes(torch.zeros(4, 17, 3), np.zeros((4, 17, 3)))


def test_arbitrary_leading_dims():
    rng = np.random.default_rng(14)
    src = rng.normal(size=(2, 3, 4, 17, 3))
    dst = rng.normal(size=(2, 3, 4, 17, 3))
    out = procrustes_np(src, dst)
    assert out.s.shape == (2, 3) and out.R.shape == (2, 3, 3, 3) and out.t.shape == (2, 3, 3)
    flat = procrustes_np(src.reshape(6, 4, 17, 3), dst.reshape(6, 4, 17, 3))
    np.testing.assert_allclose(out.R.reshape(6, 3, 3), flat.R, atol=1e-12)
    single = procrustes_np(src[0, 0], dst[0, 0])  # no leading dims: (T, J, 3)
    assert single.s.shape == () and single.R.shape == (3, 3)


@pytest.mark.parametrize("bad, arg", [
    (dict(src=np.zeros((4, 17, 2))), "src"),
    (dict(src=np.zeros((17, 3))), "src"),
    (dict(src=np.zeros((0, 17, 3)), dst=np.zeros((0, 17, 3))), "src"),
    (dict(dst=np.zeros((4, 16, 3))), "dst"),
    (dict(src=np.full((4, 17, 3), np.nan)), "src"),
    (dict(dst=np.full((4, 17, 3), np.inf)), "dst"),
    (dict(weights=np.ones((4, 16))), "weights"),
    (dict(weights=-np.ones((4, 17))), "weights"),
    (dict(mode="per-frame"), "mode"),
])
def test_bad_input_raises_value_error_naming_the_argument(bad, arg):
    kwargs = dict(src=np.ones((4, 17, 3)) + np.arange(17)[:, None], dst=np.ones((4, 17, 3)), weights=None,
                  mode="sequence")
    kwargs.update(bad)
    with pytest.raises(ValueError, match=arg):
        procrustes(**kwargs)


def test_rotation_angle_deg_matches_scipy():
    rots = Rotation.random(20, random_state=15)
    R = rots.as_matrix()
    ref = np.rad2deg(rots.magnitude())
    np.testing.assert_allclose(rotation_angle_deg(R), ref, atol=1e-9)
    np.testing.assert_allclose(rotation_angle_deg(torch.from_numpy(R)).numpy(), ref, atol=1e-9)
    assert rotation_angle_deg(np.eye(3)) == pytest.approx(0.0)
    assert rotation_angle_deg(np.diag([1.0, -1.0, -1.0])) == pytest.approx(180.0)
    with pytest.raises(ValueError, match="R"):
        rotation_angle_deg(np.eye(4))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    rng = np.random.default_rng(16)
    src = torch.from_numpy(rng.normal(scale=0.3, size=(8, 50, 17, 3)))
    dst = torch.from_numpy(rng.normal(scale=0.3, size=(8, 50, 17, 3)))
    ref = procrustes_torch(src, dst)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        a = src.to("cuda", dtype).requires_grad_()
        out = procrustes_torch(a, dst.to("cuda", dtype))
        assert out.aligned.device.type == "cuda"
        np.testing.assert_allclose(out.aligned.detach().double().cpu().numpy(), ref.aligned.numpy(), atol=tol)
        out.aligned.sum().backward()
        assert torch.isfinite(a.grad).all()


def test_bench_procrustes_cli_small(tmp_path, capsys):
    import json

    from mvcapture.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "procrustes", "--sequences", "8", "--frames", "10", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["hardware"]["cpu"] and result["B"] == 8
    cpu64 = next(r for r in result["torch"] if r["device"] == "cpu" and r["dtype"] == "float64")
    assert cpu64["max_abs_diff"] < 1e-10 and cpu64["speedup_vs_numpy"] > 0
    floor = {(r["device"], r["dtype"]): r for r in result["memory_floor"]}
    assert floor["cpu", "float64"]["max_speedup_vs_numpy"] > 0 and ("cpu", "float32") in floor
    assert "speed-up" in capsys.readouterr().out


def test_half_precision_and_autocast_compute_in_float32():
    rng = np.random.default_rng(17)
    src = torch.from_numpy(rng.normal(scale=0.3, size=(2, 5, 17, 3)))
    dst = torch.from_numpy(rng.normal(scale=0.3, size=(2, 5, 17, 3)))
    ref = procrustes_torch(src, dst)
    out = procrustes_torch(src.bfloat16(), dst.bfloat16())
    assert out.aligned.dtype == torch.float32
    np.testing.assert_allclose(out.R.numpy(), ref.R.numpy(), atol=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = procrustes_torch(src.float(), dst.float())
    assert out.aligned.dtype == torch.float32
    np.testing.assert_allclose(out.aligned.numpy(), ref.aligned.numpy(), atol=1e-5)


def test_optical_axis_angle_of_tilted_cameras():
    """Two cameras 90° apart around the vertical, one also tilted 30° down: the optical axes are
    acos(cos 90° · cos 30°) = 90° apart, while the relative rotation turns by more."""
    from scipy.spatial.transform import Rotation

    from mvcapture.core.procrustes import optical_axis_angle_deg, rotation_angle_deg

    # camera z axes in a y-up world: camera 0 looks along +z; camera 1 along +x, tilted 30° down
    R0 = np.eye(3)
    R1 = Rotation.from_euler("YX", [90, 30], degrees=True).as_matrix()      # camera → world
    z0, z1 = R0[:, 2], R1[:, 2]
    want = np.degrees(np.arccos(z0 @ z1))
    R = R1.T @ R0   # row-vector map of camera-1 coordinates onto camera 0: x_0 = x_1 @ R
    assert optical_axis_angle_deg(R) == pytest.approx(want, abs=1e-9) == pytest.approx(90.0, abs=1e-9)
    assert rotation_angle_deg(R) > 93  # the tilt adds to the turn: 93.8°
    batch = optical_axis_angle_deg(np.stack([R, np.eye(3)]))
    np.testing.assert_allclose(batch, [90.0, 0.0], atol=1e-9)
