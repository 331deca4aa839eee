"""Survey, settings, plan and results as terminal text."""

from __future__ import annotations

from nydus_console.setup.plan import SetupPlan, file_diff
from nydus_console.setup.survey import Survey
from nydus_console.setup.verify import GRAFANA_DASHBOARD, Verification


def survey_lines(survey: Survey) -> list[str]:
    rows = survey.rows()
    width = max(len(what) for what, _ in rows)
    lines = [f"== {survey.node}: what the node has"]
    lines += [f"   {what:<{width}}  {found}" for what, found in rows]
    return lines


def settings_lines(plan: SetupPlan) -> list[str]:
    choices = plan.settings.choices
    width = max(len(c.key) for c in choices)
    lines = [f"== {plan.node}: settings"]
    for choice in choices:
        lines.append(f"   {choice.key:<{width}}  {choice.value}")
        lines.append(f"   {'':<{width}}  ({choice.why})")
    return lines


def plan_lines(plan: SetupPlan) -> list[str]:
    if plan.empty:
        return [f"== {plan.node}: nothing to do; Nydus is set up as answered"]
    lines = [f"== {plan.node}: plan ({len(plan.steps)} step(s))"]
    if plan.done_before:
        lines.append(
            f"   continuing an interrupted run: {len(plan.done_before)} step(s) "
            "were done before and are checked again"
        )
    for number, step in enumerate(plan.steps, start=1):
        mark = " (owed by the interrupted run)" if step.resumed else ""
        lines.append(f"   {number}. {step.title}{mark}")
        lines.append(f"      why: {step.why}")
        lines += [f"      $ {command}" for command in step.commands()]
        if step.file is not None:
            lines += [f"      {line}" for line in file_diff(step.file).splitlines()]
    return lines


def verification_lines(node: str, checks: list[Verification]) -> list[str]:
    lines = [f"== {node}: verification"]
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        lines.append(f"   {mark} {check.name}: {check.detail}")
    return lines


def summary_lines(job: str, local_nodes: list[str]) -> list[str]:
    lines = ["== Prometheus scrape job for the snapshotters' metrics"]
    lines += [f"   {line}" for line in job.splitlines()]
    if local_nodes:
        lines.append(
            f"   {', '.join(local_nodes)}: metrics listen on 127.0.0.1 only; run "
            "setup with --set prometheus=true so that Prometheus can reach them"
        )
    lines.append(
        f"   Grafana: import dashboard {GRAFANA_DASHBOARD} (Nydus) and pick this "
        "Prometheus as its data source"
    )
    return lines
