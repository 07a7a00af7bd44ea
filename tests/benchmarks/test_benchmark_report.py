"""benchmarks/report.py on the committed CPU-tier results: every table renders, and unmatched figures are flagged."""

import json
from pathlib import Path

import pytest

from benchmarks.report import fmt, render

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@pytest.mark.parametrize("tier", ["cpu", "cpu-long"])
def test_report_renders_committed_result_and_flags_unmatched_points(tier):
    result = json.loads((RESULTS / f"{tier}.json").read_text())
    report = render(result)
    summary = result["summary"]
    assert f"**{summary['speed_vs_mdlm']:.2f}×**" in report
    for arm in ("ldlm", "ldlm-sampled", "ar", "mdlm"):
        assert f"| {arm} |" in report
    # a sweep that does not reach the data's entropy must have its figure called out as not comparable
    # (cpu: argmax LDLM at every step count; cpu-long: sampled LDLM at 10 steps)
    unmatched = [k for k, ok in summary["entropy_matched_within_sweep"].items() if not ok]
    assert unmatched and "Not matched: the knob sweep of " + ", ".join(unmatched) in report
    for ablation in result["ablations"]:
        line = next(row for row in report.splitlines() if row.startswith(f"| {ablation['ablation']} |"))
        assert ("not matched" in line) == (not ablation["at_matched_entropy"]["matched"])
    assert len(table_rows(report, "| arm | steps | knob |")) == len(result["quality"])  # every frontier point


def test_report_gives_every_point_its_pooled_entropy_and_distinct_1():
    """Per-sample entropy alone hides a narrow vocabulary: cpu-packed-thesis's free-head argmax LDLM matches the data's
    per-sample entropy with a pooled entropy of 5.18 against the data's 6.06, and the report must show it."""
    result = json.loads((RESULTS / "cpu-packed-thesis.json").read_text())
    report = render(result)
    header = next(line for line in report.splitlines() if line.startswith("| arm | steps | knob |"))
    assert "| pooled entropy | distinct-1 |" in header
    for row, point in zip(table_rows(report, "| arm | steps | knob |"), result["quality"], strict=True):
        assert f"| {fmt(point['entropy'])} | {fmt(point['pooled_entropy'])} | {fmt(point['distinct_1'])} |" in row
    assert f"pooled entropy {fmt(result['control']['pooled_entropy'])}" in report
    # the claims table gives both sides' pooled entropy at the matched point: LDLM's argmax texts match the data's
    # per-sample entropy (4.01) with a pooled entropy of 5.18, AR's with 6.27 (the data: 6.06)
    claims = table_rows(report, "| LDLM (best frontier) |")
    assert "pooled entropy there (data 6.06)" in report
    assert "| 5.18 | 6.27 |" in next(row for row in claims if row.startswith("| ldlm@10 | ar@0 |"))
    assert next(row for row in claims if "| cdcd@32 |" in row).endswith("| 5.18 | 7.05 |")


def table_rows(report: str, header_start: str) -> list[str]:
    """The body rows of the markdown table whose header line starts with `header_start`."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start)) + 2  # header and |---|
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_report_of_the_distilled_run_gives_no_ratio_for_an_unmatched_point():
    """cpu-long with the distilled student: its sampled sweeps miss the data's entropy, so their rows (and the
    headline, whose arm is one of them) say the comparison is not one of equal quality; matched rows keep theirs."""
    result = json.loads((RESULTS / "cpu-long-distilled.json").read_text())
    report = render(result)
    rows = {tuple(cell.strip() for cell in row.split("|")[1:3]): row
            for row in table_rows(report, "| arm | steps | calls | gen-PPL (matched) |")}
    assert "not comparable (unmatched)" in rows[("ldlm-distilled-sampled", "1")]
    assert "none reaches it (best 6,355)" in rows[("ldlm-distilled", "4")]
    assert "These ratios compare unequal quality: ldlm-sampled@10" in report
    assert "Distilled students: stages [8, 4, 2, 1]" in report and "rows reused from" in report


def test_plots_draw_both_frontiers_of_a_committed_result(tmp_path):
    """Both figures of a result file, one point per (arm, steps) in the cost figure, unmatched ones included."""
    pytest.importorskip("matplotlib")
    from benchmarks.frontier import matched_points
    from benchmarks.plots import plot_result

    result = json.loads((RESULTS / "cpu-long-distilled.json").read_text())
    drawn = plot_result(result, tmp_path, "cpu-long-distilled")
    assert [p.name for p in drawn] == ["cpu-long-distilled_frontier.png", "cpu-long-distilled_speed_frontier.png"]
    for path in drawn:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    points = matched_points(result["quality"], result["speed"], result["control"]["entropy"], 64)
    assert len(points) == len(result["speed"]) and any(not p["matched"] for p in points)


def test_a_result_of_some_arms_says_which_competitors_it_did_not_measure():
    """The committed first part of cpu-packed-thesis (LDLM and the fixed latent space; no AR, no MDLM): its ratios
    and its speed-at-quality rows say "not measured", never "no matched point", which would read as a lost race."""
    result = json.loads((RESULTS / "cpu-packed-thesis-part1.json").read_text())
    assert {r["arm"] for r in result["speed"]} == {"ldlm", "ldlm-sampled", "ldlm-fixed", "ldlm-fixed-sampled"}
    report = render(result)
    assert "MDLM not measured in this run, AR not measured in this run" in report
    speed_rows = table_rows(report, "| arm | steps | calls |")
    matched = [row for row in speed_rows if "| yes |" in row]
    assert matched and all(row.endswith("| not measured | not measured | not measured | not measured |")
                           for row in matched)
    assert not any("no matched point" in row for row in speed_rows)
