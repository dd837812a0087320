"""Boosted-tree heads: gradient-boosted trees evaluated with tensor gathers.

The default model's features are some seventy hand-made statistics, a table rather than an
image, and on tables gradient-boosted trees find the thresholds that tell a distortion from
content better than an MLP does (the model card's cross-validation measures it). Trees are
trained with scikit-learn's `HistGradientBoostingClassifier` (a distortion head: one binary
ensemble per type) or `HistGradientBoostingRegressor` (a severity head: how much quality each
type leaves), and converted here into fixed-size tensors (buffers of the prediction network,
saved in the same model file), so the network stays one `torch.nn.Module`: it runs anywhere
PyTorch runs, exports to ONNX (gathers and comparisons) and needs no scikit-learn to score.

Evaluation walks every tree of every output at once, one level per step: a node is a row of
one table (split feature, threshold, children); leaves point to themselves, so after `depth`
steps every walk rests on its leaf.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn


# Columns of the node table: one row per node, gathered in one call per level.
_THRESHOLD, _LEFT, _RIGHT, _FEATURE, _MISSING_LEFT = range(5)


class BoostedTrees(nn.Module):
    """`outputs` ensembles of `trees` trees of at most `nodes` nodes: x [N, F] -> [N, outputs],
    the sum of each ensemble's leaves and its baseline (a logit for a classifier's trees, the
    prediction for a regressor's)."""

    def __init__(self, outputs: int, trees: int, nodes: int, depth: int):
        super().__init__()
        self.outputs, self.trees, self.nodes, self.depth = int(outputs), int(trees), int(nodes), int(depth)
        size = self.outputs * self.trees * self.nodes
        # Flat over (output, tree, node): threshold, left child, right child, split feature and
        # missing-goes-left, as float32 (indices are exact below 2**24). Leaves point to
        # themselves and have an infinite threshold.
        table = torch.zeros(size, 5)
        table[:, _THRESHOLD] = float("inf")
        table[:, _LEFT] = table[:, _RIGHT] = torch.arange(size, dtype=torch.float32)
        self.register_buffer("table", table)
        self.register_buffer("value", torch.zeros(size))
        self.register_buffer("baseline", torch.zeros(self.outputs))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.outputs, self.trees, self.nodes, self.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, walks = x.shape[0], self.outputs * self.trees
        node = (torch.arange(walks, device=x.device) * self.nodes).repeat(n)  # [n * walks], row-major
        for _ in range(self.depth):
            rows = self.table.index_select(0, node).view(n, walks, 5)
            v = x.gather(1, rows[..., _FEATURE].long())
            # scikit-learn's rule: x <= threshold goes left; a missing value goes where
            # training sent missing values.
            go_left = (v <= rows[..., _THRESHOLD]) | (torch.isnan(v) & (rows[..., _MISSING_LEFT] > 0))
            node = torch.where(go_left, rows[..., _LEFT], rows[..., _RIGHT]).long().view(-1)
        leaf = self.value.index_select(0, node).view(n, self.outputs, self.trees).sum(dim=2)
        return leaf + self.baseline


def _tree_arrays(nodes: Any) -> dict[str, np.ndarray]:
    if np.any(nodes["is_categorical"]):
        raise ValueError("categorical splits are not supported")
    return {
        "feature": nodes["feature_idx"].astype(np.int64),
        "threshold": np.where(nodes["is_leaf"], np.inf, nodes["num_threshold"]).astype(np.float32),
        "left": np.where(nodes["is_leaf"], np.arange(len(nodes)), nodes["left"]).astype(np.int64),
        "right": np.where(nodes["is_leaf"], np.arange(len(nodes)), nodes["right"]).astype(np.int64),
        "missing_left": nodes["missing_go_to_left"].astype(bool),
        "value": np.where(nodes["is_leaf"], nodes["value"], 0.0).astype(np.float32),
        "depth": int(nodes["depth"].max()),
    }


def from_sklearn(models: Sequence[Any]) -> BoostedTrees:
    """One `BoostedTrees` from fitted `HistGradientBoostingClassifier`s (binary: the output is
    the logit) or `HistGradientBoostingRegressor`s (squared error: the output is the
    prediction), one per output.

    Reads the fitted predictors (`_predictors`, `_baseline_prediction`: scikit-learn's own
    representation, checked against `predict_proba` and `predict` by the tests for the
    installed version).
    """
    per_output = []
    for model in models:
        if hasattr(model, "classes_") and len(model.classes_) != 2:
            raise ValueError("a classifier must be binary")
        if not getattr(model, "_predictors", None):
            raise ValueError("each model must be a fitted HistGradientBoosting model")
        trees = [_tree_arrays(predictors[0].nodes) for predictors in model._predictors]
        per_output.append((float(np.ravel(model._baseline_prediction)[0]), trees))
    n_trees = max(1, max(len(trees) for _, trees in per_output))
    n_nodes = max(1, max((len(t["feature"]) for _, trees in per_output for t in trees), default=1))
    depth = max(1, max((t["depth"] for _, trees in per_output for t in trees), default=1))
    if len(models) * n_trees * n_nodes >= 2**24:
        raise ValueError(f"{len(models) * n_trees * n_nodes} nodes: more than float32 node indices can address")
    head = BoostedTrees(len(models), n_trees, n_nodes, depth)
    table, value = head.table.numpy().copy(), head.value.numpy().copy()
    baseline = np.zeros(len(models), dtype=np.float32)
    for o, (base, trees) in enumerate(per_output):
        baseline[o] = base
        for t, arrays in enumerate(trees):
            start = (o * n_trees + t) * n_nodes
            rows = slice(start, start + len(arrays["feature"]))
            table[rows, _THRESHOLD] = arrays["threshold"]
            table[rows, _LEFT] = arrays["left"] + start
            table[rows, _RIGHT] = arrays["right"] + start
            table[rows, _FEATURE] = arrays["feature"]
            table[rows, _MISSING_LEFT] = arrays["missing_left"]
            value[rows] = arrays["value"]
    with torch.no_grad():
        head.table.copy_(torch.from_numpy(table))
        head.value.copy_(torch.from_numpy(value))
        head.baseline.copy_(torch.from_numpy(baseline))
    return head


def fit_boosted_trees(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    regression: bool = False,
    max_iter: int = 300,
    learning_rate: float = 0.05,
    max_leaf_nodes: int = 15,
    l2_regularization: float = 1.0,
    seed: int = 0,
) -> BoostedTrees:
    """One ensemble per column of `labels`, fitted on `features`: binary classifiers of 0/1
    labels (outputs are logits), or with `regression` squared-error regressors of real labels."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    settings = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                    l2_regularization=l2_regularization, early_stopping=False, random_state=seed)
    models = []
    for j in range(labels.shape[1]):
        if regression:
            models.append(HistGradientBoostingRegressor(**settings).fit(features, np.asarray(labels[:, j], dtype=float)))
            continue
        y = np.asarray(labels[:, j]).astype(int)
        if y.min() == y.max():
            raise ValueError(f"output {j}: the training rows hold one class only")
        models.append(HistGradientBoostingClassifier(**settings).fit(features, y))
    return from_sklearn(models)
