"""The boosted-tree distortion head: scikit-learn's trees, run as tensors of the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqscope.features import FeatureConfig
from vqscope.heads import DISTORTION_PREFIX, HeadConfig, Part, PlattScaling, PredictionNetwork
from vqscope.model import Model, ModelInfo
from vqscope.taxonomy import DIMENSIONS, DISTORTION_TYPES
from vqscope.heads import BoostedTrees, fit_boosted_trees, from_sklearn

ensemble = pytest.importorskip("sklearn.ensemble", reason="scikit-learn not installed (pip install 'vqscope[train]')")


def data(rows: int = 600, columns: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)).astype(np.float32)
    x[rng.random(x.shape) < 0.03] = np.nan  # missing values take the side training gave them
    a, b = np.nan_to_num(x[:, 0]), np.nan_to_num(x[:, 1])
    labels = np.stack([a + a * b > 0.2, np.abs(b) > 1.0, np.nan_to_num(x[:, 2]) > 0.5], axis=1)
    return x, labels


def test_converted_trees_give_scikit_learns_probabilities():
    x, labels = data()
    # Different tree counts and sizes per output: the smaller ensembles are padded.
    classifiers = [
        ensemble.HistGradientBoostingClassifier(max_iter=n, max_leaf_nodes=leaves, early_stopping=False,
                                                random_state=0).fit(x, labels[:, j])
        for j, (n, leaves) in enumerate(((40, 15), (25, 7), (60, 31)))
    ]
    trees = from_sklearn(classifiers)
    assert trees.shape[:2] == (3, 60)
    with torch.no_grad():
        got = torch.sigmoid(trees(torch.from_numpy(x))).numpy()
    expected = np.stack([c.predict_proba(x)[:, 1] for c in classifiers], axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got[:, 0].std() > 0.1  # the trees learned something, not a constant


def test_fit_rejects_a_type_without_both_classes():
    x, labels = data(rows=100)
    labels[:, 1] = False
    with pytest.raises(ValueError, match="one class"):
        fit_boosted_trees(x, labels, max_iter=5)


def tree_network(in_dim: int) -> PredictionNetwork:
    torch.manual_seed(0)
    x, _ = data(rows=800, columns=in_dim)
    x = np.nan_to_num(x)
    labels = np.stack([x[:, j % in_dim] > 0.3 for j in range(len(DISTORTION_TYPES))], axis=1)
    net = PredictionNetwork(HeadConfig(in_dim=in_dim, hidden=(8,), heads=DIMENSIONS, primary="overall",
                                       distortions=DISTORTION_TYPES, parts=(Part("detection_gate"),)))
    return net.with_part("tree_distortions", fit_boosted_trees(x, labels, max_iter=20, max_leaf_nodes=7)).eval()


def composed_network(seed: int) -> tuple[FeatureConfig, np.ndarray, np.ndarray, PredictionNetwork]:
    """Features, 800 random clips, each type's share of quality kept, and a network whose
    dimensions are composed from severity trees fitted on them."""
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    x = np.random.default_rng(seed).normal(size=(800, features.dim)).astype(np.float32)
    keep = np.clip(1.0 - 0.4 * (x[:, :12] > 0.5), 0.0, 1.0)
    composed = tree_network(features.dim).with_part("severity_composition", 
        fit_boosted_trees(x, keep, regression=True, max_iter=20, max_leaf_nodes=7))
    return features, x, keep, composed


def test_a_network_with_trees_gates_its_dimensions_with_them_and_survives_save_and_load(tmp_path):
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    net = tree_network(features.dim)
    assert isinstance(net.distortion_head, BoostedTrees) and net.config.has("tree_distortions")
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(9, features.dim)).astype(np.float32))
    with torch.no_grad():
        out = net(x)
        probs = torch.sigmoid(net.distortion_head(x))
        raw = net.heads["noise"](net.embed(x)).squeeze(-1) * 100.0
    noise = DISTORTION_TYPES.index("noise")
    torch.testing.assert_close(out[DISTORTION_PREFIX + "noise"], probs[:, noise])
    torch.testing.assert_close(out["noise"], 100.0 - (100.0 - raw) * probs[:, noise])

    info = ModelInfo("tree-test", 1, "test", training={"data": "none"}, card={"summary": "test"})
    path = Model(info, features, net).save(tmp_path / "tree-test-1.safetensors")
    loaded = Model.load(path)
    assert loaded.network.config.parts == net.config.parts
    again = loaded.predict(x.numpy())
    for key, value in out.items():
        np.testing.assert_allclose(again[key], value.numpy(), atol=1e-5)


def test_onnx_export_runs_the_trees(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")
    from vqscope.export import export_onnx, use_onnx

    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    info = ModelInfo("tree-onnx", 1, "test", training={"data": "none"}, card={"summary": "test"})
    path = Model(info, features, tree_network(features.dim)).save(tmp_path / "tree-onnx-1.safetensors")
    x = np.random.default_rng(2).normal(size=(5, features.dim)).astype(np.float32)
    expected = Model.load(path).predict(x)
    model = Model.load(path)
    use_onnx(model, export_onnx(model, tmp_path / "export"))
    got = model.predict(x)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-3 if key in DIMENSIONS else 1e-5)


def test_converted_regression_trees_give_scikit_learns_predictions():
    x, labels = data()
    target = np.nan_to_num(x[:, 0]) * 0.3 + labels[:, 1] * 0.5
    regressor = ensemble.HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=15, early_stopping=False,
                                                       random_state=0).fit(x, target)
    trees = from_sklearn([regressor])
    with torch.no_grad():
        got = trees(torch.from_numpy(x))[:, 0].numpy()
    np.testing.assert_allclose(got, regressor.predict(x), atol=1e-5)
    assert np.corrcoef(got, target)[0, 1] > 0.9


def test_severity_trees_compose_each_dimension_from_its_types_and_survive_export(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")
    from vqscope.export import export_onnx, use_onnx
    from vqscope.taxonomy import types_of

    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(800, features.dim)).astype(np.float32)
    keep = np.clip(1.0 - 0.4 * (x[:, :12] > 0.5) * (1.0 + 0.5 * x[:, 12:13]), 0.0, 1.0)
    net = tree_network(features.dim)
    composed = net.with_part("severity_composition", fit_boosted_trees(x, keep, regression=True, max_iter=20, max_leaf_nodes=7)).eval()
    assert composed.config.composed == DIMENSIONS
    assert composed.config.hidden == () and len(composed.heads) == 0  # no trunk, no linear head left

    q = torch.from_numpy(x[:6])
    with torch.no_grad():
        out = composed(q)
        k = composed.severity_head(q).clamp(0, 1)
        p = torch.sigmoid(composed.distortion_head(q))
    kept = 1 - (1 - k) * p
    for d in DIMENSIONS:
        types = DISTORTION_TYPES if d == "overall" else types_of(d)
        columns = [i for i, t in enumerate(DISTORTION_TYPES) if t in types]
        torch.testing.assert_close(out[d], kept[:, columns].prod(dim=1) * 100)
    assert float(out["overall"].min()) < float(out["noise"].min())  # overall takes every type's toll

    info = ModelInfo("severity-test", 1, "test", training={"data": "none"}, card={"summary": "test"})
    path = Model(info, features, composed).save(tmp_path / "severity-test-1.safetensors")
    expected = Model.load(path).predict(x[:6])
    for key in out:
        np.testing.assert_allclose(expected[key], out[key].numpy(), atol=1e-4)
    model = Model.load(path)
    use_onnx(model, export_onnx(model, tmp_path / "export"))
    got = model.predict(x[:6])
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-3 if key in DIMENSIONS else 1e-5)


def test_overall_trees_average_the_composed_overall_with_their_regression_and_survive_export(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")
    from vqscope.export import export_onnx, use_onnx

    features, x, keep, composed = composed_network(seed=5)
    with pytest.raises(ValueError, match="tree outputs"):
        composed.with_part("overall_regression", fit_boosted_trees(x, keep, regression=True, max_iter=5, max_leaf_nodes=7))
    overall = fit_boosted_trees(x, keep.prod(axis=1, keepdims=True), regression=True, max_iter=20, max_leaf_nodes=7)
    blended = composed.with_part("overall_regression", overall).eval()
    assert blended.config.part("overall_regression") == Part("overall_regression", overall.shape[1:])

    q = torch.from_numpy(x[:6])
    with torch.no_grad():
        before, after = composed.eval()(q), blended(q)
        regressed = overall(q)[:, 0].clamp(0, 1) * 100
    torch.testing.assert_close(after["overall"], 0.5 * (before["overall"] + regressed))
    with torch.no_grad():  # dropping the regressor gives the composition back
        torch.testing.assert_close(blended.without_part("overall_regression")(q)["overall"], before["overall"])
    assert not torch.allclose(after["overall"], before["overall"])
    for key in before:
        if key != "overall":  # the other dimensions and the probabilities are untouched
            torch.testing.assert_close(after[key], before[key])

    info = ModelInfo("overall-test", 1, "test", training={"data": "none"}, card={"summary": "test"})
    path = Model(info, features, blended).save(tmp_path / "overall-test-1.safetensors")
    model = Model.load(path)
    expected = model.predict(x[:6])
    np.testing.assert_allclose(expected["overall"], after["overall"].numpy(), atol=1e-4)
    use_onnx(model, export_onnx(model, tmp_path / "export"))
    np.testing.assert_allclose(model.predict(x[:6])["overall"], expected["overall"], atol=1e-3)


def test_overall_trees_need_a_composed_overall():
    with pytest.raises(ValueError, match="overall_regression needs a severity_composition"):
        HeadConfig(in_dim=4, heads=("overall",), distortions=DISTORTION_TYPES, parts=(Part("overall_regression", (3, 7, 3)),))


def test_calibration_maps_each_types_logit_and_feeds_the_composition_and_survives_export(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")
    from vqscope.export import export_onnx, use_onnx

    features, x, _, composed = composed_network(seed=6)
    composed = composed.eval()
    scale, shift = np.linspace(0.3, 1.5, 12), np.linspace(-2.0, 1.0, 12)
    calibrated = composed.with_part("platt_scaling", PlattScaling.fitted(scale, shift)).eval()
    assert calibrated.config.has("platt_scaling") and not composed.config.has("platt_scaling")

    q = torch.from_numpy(x[:6])
    with torch.no_grad():
        raw = composed.distortion_logits(None, q)
        before, after = composed(q), calibrated(q)
        k = calibrated.severity_head(q).clamp(0, 1)
    p = torch.sigmoid(raw * torch.tensor(scale, dtype=torch.float32) + torch.tensor(shift, dtype=torch.float32))
    for j, t in enumerate(DISTORTION_TYPES):
        torch.testing.assert_close(after["p:" + t], p[:, j])
    # the composition reads the calibrated probabilities
    color = [DISTORTION_TYPES.index(t) for t in ("overexposure", "underexposure", "color_cast")]
    torch.testing.assert_close(after["color"], (1 - (1 - k[:, color]) * p[:, color]).prod(dim=1) * 100)
    assert not torch.allclose(after["color"], before["color"])
    with torch.no_grad():  # ones and zeros undo it
        undone = calibrated.with_part("platt_scaling", PlattScaling.fitted(np.ones(12), np.zeros(12)))(q)
    for key in before:
        torch.testing.assert_close(undone[key], before[key])

    info = ModelInfo("calibrated-test", 1, "test", training={"data": "none"}, card={"summary": "test"})
    model = Model.load(Model(info, features, calibrated).save(tmp_path / "calibrated-test-1.safetensors"))
    expected = model.predict(x[:6])
    np.testing.assert_allclose(expected["p:color_cast"], after["p:color_cast"].numpy(), atol=1e-5)
    use_onnx(model, export_onnx(model, tmp_path / "export"))
    got = model.predict(x[:6])
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-3 if key in DIMENSIONS else 1e-5)


def test_calibration_refuses_a_map_that_would_change_a_ranking_or_a_wrong_length():
    network = tree_network(4)
    with pytest.raises(ValueError, match="positive"):
        network.with_part("platt_scaling", PlattScaling.fitted([1.0] * 11 + [-0.5], [0.0] * 12))
    with pytest.raises(ValueError, match="does not fit this network's distortion_calibration"):
        network.with_part("platt_scaling", PlattScaling.fitted([1.0] * 11, [0.0] * 11))
    with pytest.raises(ValueError, match="platt_scaling needs distortion types"):
        HeadConfig(in_dim=4, heads=("overall",), parts=(Part("platt_scaling"),))


def test_fit_logit_calibration_recovers_the_map_that_made_the_labels():
    from vqscope.train import fit_logit_calibration

    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(20000, 3))
    truth_scale, truth_shift = np.array([0.4, 1.0, 2.0]), np.array([-1.5, 0.0, 0.5])
    labels = rng.uniform(size=logits.shape) < 1 / (1 + np.exp(-(truth_scale * logits + truth_shift)))
    labels[:, 2] = False  # a type never present keeps the identity map
    logits[:5, 0] = np.nan  # clips without an out-of-fold logit are left out
    scale, shift = fit_logit_calibration(logits, labels)
    np.testing.assert_allclose(scale[:2], truth_scale[:2], rtol=0.1)
    np.testing.assert_allclose(shift[:2], truth_shift[:2], atol=0.12)
    assert (scale[2], shift[2]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="clips, types"):
        fit_logit_calibration(logits[:, 0], labels[:, 0])
