"""Policies and decisions (admin): apply a bundle as a new policy epoch, read the current one
and the history, and ask for a blended decision with its explanation.

The calling admin token is the actor of every epoch (``admin:<token name>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tabard.policy import DecisionRequest, Hop, PolicyBundle, PolicyEpoch, Scope
from tabard.server.deps import Admin, Services

router = APIRouter(tags=["policies"])


class EpochView(BaseModel):
    epoch: int
    actor: str
    at: datetime
    sha256: str
    files: list[str]

    @classmethod
    def of(cls, e: PolicyEpoch) -> EpochView:
        return cls(epoch=e.epoch, actor=e.actor, at=e.at, sha256=e.sha256, files=list(e.files))


class PoliciesView(BaseModel):
    epoch: EpochView | None
    files: dict[str, str]


class ApplyBody(BaseModel):
    files: dict[str, str] = Field(description="File name → content: *.cedar files and one "
                                              "catalog.yaml (or .yml/.json).")
    expected_epoch: int | None = Field(default=None, description="Refuse (409) unless the "
                                       "current epoch is this one.")


class AppliedView(BaseModel):
    epoch: EpochView
    changed: bool


class HistoryView(BaseModel):
    history: list[EpochView]


class HopBody(BaseModel):
    actor: str = Field(max_length=2048)
    scope: str | None = Field(default=None, max_length=64 * 1024,
                              description="The hop's OAuth scope; absent = unrestricted.")


class DecisionBody(BaseModel):
    agent: str = Field(max_length=2048, description="The agent instance SPIFFE ID.")
    user: str | None = Field(default=None, max_length=255)
    action: str = Field(max_length=64)
    resource: str = Field(max_length=4096, description="TYPE::ID, e.g. Tool::jira.search")
    chain: list[HopBody] = Field(default_factory=list, max_length=16)
    context: dict[str, Any] | None = None


@router.get("/api/v1/policies", response_model=PoliciesView)
def get_policies(services: Services, admin: Admin) -> PoliciesView:
    stored = services.policies.current()
    if stored is None:
        return PoliciesView(epoch=None, files={})
    return PoliciesView(epoch=EpochView.of(stored.epoch), files=dict(stored.files))


@router.put("/api/v1/policies", response_model=AppliedView)
def put_policies(body: ApplyBody, services: Services, admin: Admin) -> AppliedView:
    applied = services.policies.apply(PolicyBundle.of(body.files), actor=admin.actor,
                                      expected_epoch=body.expected_epoch)
    return AppliedView(epoch=EpochView.of(applied.epoch), changed=applied.changed)


@router.get("/api/v1/policies/history", response_model=HistoryView)
def policy_history(services: Services, admin: Admin,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> HistoryView:
    return HistoryView(history=[EpochView.of(e) for e in services.policies.history(limit)])


@router.post("/api/v1/decisions")
def decide(body: DecisionBody, services: Services, admin: Admin) -> dict[str, Any]:
    """The blended decision for one request, with its reasons and deciding policies."""
    request = DecisionRequest.build(agent=body.agent, user=body.user, action=body.action,
                                    resource=body.resource, context=body.context)
    if body.chain:
        request = DecisionRequest(
            agent=request.agent, user=request.user, action=request.action,
            resource=request.resource, context=request.context,
            chain=tuple(Hop(h.actor, Scope.parse(h.scope)) for h in body.chain))
    decision = services.policies.decide(request)
    return {**decision.as_dict(), "request": request.as_dict()}
