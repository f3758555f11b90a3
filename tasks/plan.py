"""Plan a request: a playbook's pinned plan, or a structured request planned by the rules planner;
either way checked against the registry before anything runs."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from airlock.dataset import read_header, read_sample
from airlock.errors import ConfigError, InputDataError
from airlock.plan import Plan, Policy
from airlock.plan_check import ensure_plan_ok
from airlock.planning.llm import LLMPlanner, plan_and_record
from airlock.planning.rules import RulesPlanner
from airlock.playbook import StructuredRequest, load_playbook
from airlock.registry import ToolRegistry
from airlock.retry import RetryPolicy
from tasks.resources import Resources, resources


class PlanRequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook: str
    input_path: str | None = None


class PlannedRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook: str
    input_path: str
    plan: Plan


def plan_request_fn(request: PlanRequestInput) -> PlannedRun:
    res = resources()
    project = res.settings.project_dir
    playbook_path = _resolve(project, request.playbook)
    playbook = load_playbook(playbook_path)
    if request.input_path is None and playbook.input is None:
        raise InputDataError(f"{playbook_path}: no input given and the playbook names no 'input:'")
    input_path = _resolve(project, request.input_path or playbook.input or "")
    columns = read_header(input_path)
    if playbook.plan is not None:
        plan = _pinned_plan_ok(res, playbook.plan)
        missing = [c for c in plan.dataset.columns if c not in columns]
        if missing:
            raise InputDataError(f"{input_path}: missing column(s) {', '.join(missing)} that the pinned plan reads")
    else:
        assert playbook.request is not None
        expected = getattr(playbook.request, "columns", None)
        if expected:
            missing = [c for c in expected if c not in columns]
            if missing:
                raise InputDataError(f"{input_path}: missing column(s) {', '.join(missing)}; the file has "
                                     f"{', '.join(columns)}")
        plan = plan_for(res, playbook.request, expected or columns, playbook.effective_policy, input_path)
    return PlannedRun(playbook=playbook.name, input_path=str(input_path), plan=plan)


plan_request = task(name="plan", cache_policy=NO_CACHE)(plan_request_fn)

def plan_for(res: Resources, request: StructuredRequest | str, columns: list[str], policy: Policy,
             input_path: Path) -> Plan:
    """The rules planner, or the configured model planner (AIRLOCK_PLANNER) with its repairs and fallback."""
    if res.model is None:
        return RulesPlanner().plan(request, columns, policy, res.registry)
    key = (request if isinstance(request, str) else request.model_dump_json(), ",".join(columns),
           policy.model_dump_json(), _catalog_key(res.registry), res.model.name)
    # Once per process and store: the CLI's preflight and the flow it starts must get the same plan
    # without paying twice.
    if key not in res.model_plans:
        planner = _model_planner(res)
        outcome, _ = plan_and_record(planner, res.store, res.settings.actor, request, columns, policy, res.registry,
                                     samples=read_sample(input_path), dataset=input_path.stem)
        assert outcome.plan is not None
        res.model_plans[key] = outcome.plan
    return ensure_plan_ok(res.model_plans[key], res.registry)


def _model_planner(res: Resources) -> LLMPlanner:
    assert res.model is not None
    retry = RetryPolicy(attempts=res.settings.llm_attempts, base_delay=0.5, max_delay=30.0)
    return LLMPlanner(res.model, repairs=res.settings.llm_repairs, retry=retry)


def _pinned_plan_ok(res: Resources, plan: Plan) -> Plan:
    missing = [t for t in [*(s.tool for s in plan.steps), *(w.tool for w in plan.writes)] if t not in res.registry]
    if missing and res.model is None:
        raise ConfigError(f"the pinned plan uses {', '.join(sorted(set(missing)))}, which this registry lacks; "
                          "model-backed tools are registered only when AIRLOCK_PLANNER names a model provider")
    return ensure_plan_ok(plan, res.registry)


def _catalog_key(registry: ToolRegistry) -> str:
    return ",".join(f"{name}={digest}" for name, digest in sorted(registry.spec_hashes().items()))


def _resolve(project: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate.resolve()
    return (project / candidate).resolve()


class PlanTextInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request: str
    input_path: str
    policy_playbook: str | None = None


class PlannedText(BaseModel):
    """A request in words, planned by the model and checked: what ``airlock plan`` pins."""

    model_config = ConfigDict(extra="forbid")

    plan: Plan
    input_path: str
    status: str
    unsupported: list[str]
    explanation: str
    conversation_id: int
    tokens: int
    cost_usd: float


def plan_text(data: PlanTextInput) -> PlannedText:
    res = resources()
    if res.model is None:
        raise ConfigError("a request in words needs a model planner: set AIRLOCK_PLANNER=anthropic or openai "
                          "(a structured playbook is pinned with 'airlock pin')")
    project = res.settings.project_dir
    input_path = _resolve(project, data.input_path)
    columns = read_header(input_path)
    policy = Policy()
    if data.policy_playbook is not None:
        policy = load_playbook(_resolve(project, data.policy_playbook)).effective_policy
    planner = _model_planner(res)
    outcome, conversation_id = plan_and_record(planner, res.store, res.settings.actor, data.request, columns, policy,
                                               res.registry, samples=read_sample(input_path),
                                               dataset=input_path.stem)
    assert outcome.plan is not None
    return PlannedText(plan=outcome.plan, input_path=str(input_path), status=outcome.status,
                       unsupported=outcome.unsupported, explanation=outcome.explain(),
                       conversation_id=conversation_id, tokens=outcome.usage.total,
                       cost_usd=round(outcome.cost_usd, 6))
