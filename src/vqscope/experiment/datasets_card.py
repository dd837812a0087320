"""The model card of a model trained on MOS datasets (experiment/runner.py).

Written from the training record and test results stored in the model file, beside it as
MODEL.md, so that what a model learnt from, how it was split and how it did on held-out videos
travels with it as a corpus-trained model's card does.
"""

from __future__ import annotations

from pathlib import Path

from ..model import Model
from .provenance import card_heading


def _interval(metrics: dict, key: str) -> str:
    low_high = metrics.get("ci", {}).get(key)
    return f" [{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else ""


def write_datasets_card(path: Path, model: Model) -> None:
    t, card = model.info.training, model.info.card
    train = t["train"]
    heads = "one shared head (`overall`)" if train.get("shared_head") else "one head per dataset"
    lines = [
        *card_heading(model),
        "## What it predicts",
        f"A score on 0-100 per clip and, as their mean, per video, from the `{t['primary']}` head ({heads}: "
        f"{', '.join(f'`{h}`' for h in t['heads'])}); a grade; and the percentile of the score among "
        f"{t.get('calibration_set', 'its training videos')}.",
        "",
        "## Training data",
        "| dataset (head) | spec | MOS scale | videos found | missing | failed | split | train | validation | test |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in t["datasets"]:
        s = d["split"]
        method = s["method"] + (f" (fold {s['fold']} of {s['folds']})" if s["method"] == "kfold" else "")
        lines.append(f"| {d['name']} ({d['head']}) | `{d['spec']}` | {d['scale'][0]:g}-{d['scale'][1]:g} | {d['found']} | "
                     f"{d['missing']} | {d['failed']} | {method} | {s.get('train', 0)} | {s.get('val', 0)} | "
                     f"{s.get('test', 0)} |")
    lines += [
        "",
        f"Features: {', '.join(model.features.spatial)} (key frame), {', '.join(model.features.temporal)} "
        f"(32-frame window). Network: trunk {train['hidden']}, dropout {train['dropout']}, AdamW lr {train['lr']}, "
        f"weight decay {train['weight_decay']}; {train['videos_per_dataset']} videos of each dataset per batch; "
        f"{train['loss']} loss plus {train['correlation_loss']} loss (weight {train['correlation_weight']}); "
        f"seed {train['seed']}. Best epoch {t['best_epoch']} by mean validation SROCC ({t['val_srocc']:.3f}).",
        "",
        "## Test results (held-out videos)",
    ]
    evaluation = card.get("evaluation") or {}
    if evaluation:
        lines += ["| dataset | videos | SROCC (95% interval) | KRCC | PLCC after logistic | RMSE after logistic (MOS on 0-100) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, m in evaluation.items():
            lines.append(f"| {name} | {m['n']} | {m['srocc']:.3f}{_interval(m, 'srocc')} | {m['krcc']:.3f} | "
                         f"{m['plcc_mapped']:.3f}{_interval(m, 'plcc_mapped')} | {m['rmse_mapped']:.2f} |")
    else:
        lines.append("No dataset had a test split of three or more videos: no test result.")
    cv = card.get("cross_validation")
    if cv:
        lines += ["", "Cross-validation over every fold (mean +- standard deviation):", ""]
        lines += [f"- {name}: SROCC {v['srocc']['mean']:.3f} +- {v['srocc']['std']:.3f}, PLCC after logistic "
                  f"{v['plcc_mapped']['mean']:.3f} +- {v['plcc_mapped']['std']:.3f}" for name, v in cv.items()]
    lines += [
        "",
        "## Limits",
        "- Test figures are on held-out videos of the same datasets; on other content (another platform,",
        "  other devices, other raters) agreement can be far lower: `vqscope eval` on another dataset measures it.",
        "- A head learnt one study's scale and what its raters minded; the primary head's score is that study's view.",
        "",
        f"Trained with vqscope {t['vqscope']} on {t['date']} (Python {t['python']}, torch {t['torch']}) in "
        f"{t['seconds'] / 60:.0f} minutes: `vqscope train {Path(t['config']['path'] or 'CONFIG.toml').name}`.",
        "",
    ]
    path.write_text("\n".join(lines))
