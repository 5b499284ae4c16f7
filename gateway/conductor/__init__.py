"""Async Conductor client: `ConductorClient`, its models, the search query builder."""

from gateway.conductor.capabilities import Capabilities
from gateway.conductor.client import ConductorClient
from gateway.conductor.models import (
    BulkResponse,
    SearchResult,
    Task,
    TaskDef,
    Workflow,
    WorkflowDef,
    WorkflowRun,
    WorkflowStatusSummary,
    WorkflowSummary,
)
from gateway.conductor.query import Query

__all__ = [
    "BulkResponse",
    "Capabilities",
    "ConductorClient",
    "Query",
    "SearchResult",
    "Task",
    "TaskDef",
    "Workflow",
    "WorkflowDef",
    "WorkflowRun",
    "WorkflowStatusSummary",
    "WorkflowSummary",
]
