"""Heads as parts: a config names the parts of its network in order, model files of the flag era
load as the parts they meant, and the network refuses parts that cannot go together."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vqscope.features import FeatureConfig
from vqscope.heads import PART_KINDS, HeadConfig, Part, PlattScaling, PredictionNetwork, fit_boosted_trees
from vqscope.model import Model, ModelInfo, read_model_file
from vqscope.taxonomy import DIMENSIONS, DISTORTION_TYPES

FEATURES = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))


def composed_network(seed: int = 0) -> tuple[np.ndarray, PredictionNetwork]:
    """Every kind of part but the linear distortion head: trees, Platt scaling, gate,
    composition, regression."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, FEATURES.dim)).astype(np.float32)
    present = np.stack([x[:, j % FEATURES.dim] > 0.2 for j in range(12)], axis=1)
    keep = np.clip(0.6 + 0.1 * x[:, [j % FEATURES.dim for j in range(12)]], 0, 1)  # quality each type leaves
    torch.manual_seed(seed)
    net = PredictionNetwork(HeadConfig(in_dim=FEATURES.dim, hidden=(8,), heads=DIMENSIONS + ("lab",),
                                       distortions=DISTORTION_TYPES, parts=(Part("detection_gate"),)))
    net = net.with_part("tree_distortions", fit_boosted_trees(x, present, max_iter=5, max_leaf_nodes=5))
    net = net.with_part("platt_scaling", PlattScaling.fitted(np.linspace(0.5, 1.5, 12), np.linspace(-1, 1, 12)))
    net = net.with_part("severity_composition", fit_boosted_trees(x, keep, regression=True, max_iter=5, max_leaf_nodes=5))
    overall = fit_boosted_trees(x, keep.prod(axis=1, keepdims=True), regression=True, max_iter=5, max_leaf_nodes=5)
    return x, net.with_part("overall_regression", overall).eval()


def assert_same_outputs(want_net: PredictionNetwork, got_net: PredictionNetwork, x: np.ndarray) -> None:
    """Every output of the two networks equal to the last bit on `x`."""
    q = torch.from_numpy(x)
    with torch.no_grad():
        want, got = want_net.eval()(q), got_net.eval()(q)
    assert list(got) == list(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


def test_parts_go_in_the_order_they_apply_whatever_order_they_were_added():
    _, net = composed_network()
    assert [p.kind for p in net.config.parts] == ["tree_distortions", "platt_scaling", "detection_gate",
                                                  "severity_composition", "overall_regression"]
    assert net.config.composed == DIMENSIONS  # "lab" stays a linear head on the trunk
    assert net.config.hidden == (8,) and "lab" in net.heads
    # a second distortion head replaces the first
    linear = net.with_part("linear_distortions")
    assert [p.kind for p in linear.config.parts][0] == "linear_distortions"
    assert not linear.config.has("tree_distortions")


def test_a_config_round_trips_through_a_model_file(tmp_path):
    x, net = composed_network(seed=1)
    info = ModelInfo("parts", 1, "test", training={"data": "none"})
    path = Model(info, FEATURES, net).save(tmp_path / "parts-1.safetensors")
    meta, _ = read_model_file(path, tensors=False)
    assert meta["format_version"] == 2
    assert meta["head"]["parts"][0] == {"kind": "tree_distortions", "shape": list(net.config.parts[0].shape)}
    loaded = Model.load(path)
    assert loaded.network.config == net.config
    assert_same_outputs(net, loaded.network, x[:8])


def test_a_model_file_of_the_flag_era_loads_and_scores_as_it_did(tmp_path):
    """The shipped files before parts stored flags and the Platt buffers on the network; a file
    written that way gives the same outputs as the same network written today."""
    x, net = composed_network(seed=2)
    info = ModelInfo("legacy", 1, "test", training={"data": "none"})
    path = Model(info, FEATURES, net).save(tmp_path / "legacy-1.safetensors")
    meta, _ = read_model_file(path, tensors=False)
    head = {k: v for k, v in meta["head"].items() if k != "parts"}
    shapes = {p["kind"]: p.get("shape", []) for p in meta["head"]["parts"]}
    head.update(gate_dimensions=True, calibrated=True, distortion_trees=shapes["tree_distortions"],
                severity_trees=shapes["severity_composition"], overall_trees=shapes["overall_regression"])
    tensors = load_file(path)
    tensors["distortion_scale"] = tensors.pop("distortion_calibration.scale")
    tensors["distortion_shift"] = tensors.pop("distortion_calibration.shift")
    old = tmp_path / "legacy-flags-1.safetensors"
    save_file(tensors, str(old), metadata={"vqscope": json.dumps({**meta, "format_version": 1, "head": head})})

    loaded = Model.load(old)
    assert loaded.network.config == net.config
    assert_same_outputs(net, loaded.network, x[:8])


@pytest.mark.parametrize("flags, kinds", [
    ({"gate_dimensions": True}, ["linear_distortions", "detection_gate"]),
    ({"distortion_trees": [3, 7, 3], "calibrated": True}, ["tree_distortions", "platt_scaling"]),
    ({"gate_dimensions": False, "distortion_trees": [], "severity_trees": [], "overall_trees": [],
      "calibrated": False}, ["linear_distortions"]),
])
def test_old_flags_read_as_parts(flags, kinds):
    data = {"in_dim": 4, "hidden": [], "dropout": 0.0, "heads": list(DIMENSIONS), "primary": "overall",
            "distortions": list(DISTORTION_TYPES), **flags}
    assert [p.kind for p in HeadConfig.from_dict(data).parts] == kinds


def test_a_gate_without_distortion_types_gated_nothing_and_reads_as_no_part():
    config = HeadConfig.from_dict({"in_dim": 4, "heads": ["overall"], "gate_dimensions": True})
    assert config.parts == ()


@pytest.mark.parametrize("parts, message", [
    ((Part("overall_regression", (3, 7, 3)),), "overall_regression needs a severity_composition"),
    ((Part("detection_gate"), Part("tree_distortions", (3, 7, 3))), "parts go in order"),
    ((Part("tree_distortions", (3, 7, 3)), Part("linear_distortions")), "one distortion head"),
    ((Part("detection_gate"), Part("detection_gate")), "named twice"),
])
def test_parts_that_cannot_go_together_are_refused(parts, message):
    with pytest.raises(ValueError, match=message):
        HeadConfig(in_dim=4, heads=DIMENSIONS, distortions=DISTORTION_TYPES, parts=parts)


def test_a_part_names_a_known_kind_with_the_shape_it_takes():
    assert set(PART_KINDS) == {"linear_distortions", "tree_distortions", "platt_scaling", "detection_gate",
                               "severity_composition", "overall_regression"}
    with pytest.raises(ValueError, match="unknown head part 'attention'"):
        Part("attention")
    with pytest.raises(ValueError, match=r"is \(trees, nodes, depth\)"):
        Part("tree_distortions", (3, 7))
    with pytest.raises(ValueError, match="takes no shape"):
        Part("platt_scaling", (1, 2, 3))
    with pytest.raises(ValueError, match="without_part|unknown key"):
        Part.from_dict({"kind": "platt_scaling", "scale": 2})
