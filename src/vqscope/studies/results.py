"""A study's results as `vqscope study results` and `GET /api/studies/{id}/results` give them:
per video the MOS with its interval next to the model's score, per dimension, the
distortion types raters saw, and the raters screening set aside with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .mos import PairwiseAnalysis, StudyAnalysis, analyse_comparisons, analyse_ratings
from .store import Study, StudyItem, StudyStore


@dataclass
class StudyResults:
    study: Study
    items: list[StudyItem]
    analysis: StudyAnalysis | None  # None until a video has a rating
    pairwise: PairwiseAnalysis | None  # pairwise studies, once compared
    notes: list[str]

    def rows(self) -> list[dict[str, Any]]:
        """One row per rated video: the analysis' figures and what the study knows of it."""
        if self.analysis is None:
            return []
        by_id = {i.id: i for i in self.items}
        out = []
        for result in self.analysis.items:
            item = by_id[result.item]
            if item.kind != "video":
                continue
            out.append({**result.to_dict(), "model_score": item.model_score, "scaled_score": item.scaled_score,
                        "job_id": item.job_id, "reason": item.reason})
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"study": {"id": self.study.id, "name": self.study.name, "method": self.study.method,
                                         "state": self.study.state, "model": self.study.model},
                               "notes": list(self.notes), "items": self.rows()}
        if self.analysis is not None:
            full = self.analysis.to_dict()
            out.update(summary=full["summary"], screening=full["screening"], rejected=full["rejected"],
                       raters=full["raters"], notes=full["notes"] + list(self.notes))
        if self.pairwise is not None:
            out["pairwise"] = self.pairwise.to_dict()
        return out

    def text(self) -> str:
        """Plain text for a terminal (80 columns): a line per video, then the raters set aside."""
        lines = [f"study {self.study.id} ({self.study.name}, {self.study.method}): "
                 + (self.analysis.summary() if self.analysis else "no ratings yet")]
        rows = self.rows()
        if rows:
            lines.append(f"{'video':<28} {'MOS':>4} {'95% interval':>13} {'sd':>4} {'n':>3} {'model':>5}")
            for row in rows:
                ci = row["ci95"]
                interval = f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-"
                model = f"{row['model_score']:.1f}" if row["model_score"] is not None else "-"
                sd = f"{row['std']:.2f}" if row["std"] is not None else "-"
                lines.append(f"{_cut(row['video'], 28):<28} {row['mos']:>4.2f} {interval:>13} {sd:>4} "
                             f"{row['count']:>3} {model:>5}")
        if self.analysis is not None:
            for rater in self.analysis.raters:
                if rater.rejected:
                    lines.append(f"rejected {rater.rater}: {'; '.join(rater.reasons)}")
        if self.pairwise is not None:
            lines.append(self.pairwise.summary())
            for p in sorted(self.pairwise.items, key=lambda s: -(s.score or 0.0)):
                score = f"{p.score:+.2f}" if p.score is not None else "-"
                lines.append(f"  {_cut(p.video, 40):<40} {score:>6}  won {p.wins}, lost {p.losses}")
        for note in (self.analysis.notes if self.analysis else ()) + tuple(self.notes):
            if note != "no ratings yet" or self.analysis is not None:  # the first line says it already
                lines.append(f"note: {note}")
        return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def study_results(store: StudyStore, study_id: str) -> StudyResults:
    study = store.get(study_id)
    items = store.items(study_id)
    records = [i.record() for i in items]
    ratings, comparisons = store.collected(study_id)
    notes: list[str] = []
    analysis = pairwise = None
    main = [r for r in ratings if r.kind == "main"]
    if main:
        analysis = analyse_ratings(ratings, items=records)
    elif study.method != "pairwise":
        notes.append("no ratings yet")
    if study.method == "pairwise":
        if any(c.kind == "main" for c in comparisons):
            pairwise = analyse_comparisons(comparisons, items=records)
        else:
            notes.append("no comparisons yet")
    return StudyResults(study, items, analysis, pairwise, notes)
