"""X-Ray's response shapes for the local query API: trace summaries and service graphs.

A ``TraceSummary`` is made from an assembled trace (:mod:`tracing.local.collector.traces`);
``Services`` (with their ``Edges``) from the service map
(:mod:`tracing.local.collector.service_graph`), its node types named as X-Ray names them.
Field names and nesting are botocore's service model's (``xray/2016-04-12``).
"""

from __future__ import annotations

import math
from typing import Any

from tracing.local.collector.service_graph import MapNode, ServiceMap, _Stats, build_map
from tracing.local.collector.traces import Node, Trace

__all__ = ["services", "summary"]

#: X-Ray's type strings for the service map's node types.
_TYPES = {
    "client": "client",
    "function": "AWS::Lambda::Function",
    "queue": "AWS::SQS::Queue",
    "table": "AWS::DynamoDB::Table",
    "bucket": "AWS::S3::Bucket",
    "topic": "AWS::SNS::Topic",
    "stream": "AWS::Kinesis::Stream",
    "table_stream": "AWS::DynamoDB::Stream",
    "bus": "AWS::Events::EventBus",
    "state_machine": "AWS::StepFunctions::StateMachine",
    "remote": "remote",
}
#: AWS services named on the map (by their display name) -> X-Ray's ``AWS::<service>``.
_AWS_SERVICES = {
    "Secrets Manager": "SecretsManager",
    "EventBridge": "Events",
    "Step Functions": "StepFunctions",
    "DynamoDB Streams": "DynamoDBStreams",
}


# -- the summary --------------------------------------------------------------------------


def _service_id(name: str, kind: str | None) -> dict[str, Any]:
    service: dict[str, Any] = {"Name": name, "Names": [name]}
    if kind:
        service["Type"] = kind
    return service


def _node_type(node: MapNode) -> str | None:
    if node.type == "aws":
        return "AWS::" + _AWS_SERVICES.get(node.name, node.name.replace(" ", ""))
    return _TYPES.get(node.type)


def _owner_id(root: Node) -> dict[str, Any]:
    """Whose work a document is: its segment's service, or the invoked function."""
    if root.kind == "segment":
        origin = root.entity.get("origin")
        return _service_id(root.name, origin if isinstance(origin, str) else None)
    service = root.annotations.get("Service")
    if isinstance(service, str) and service:
        return _service_id(service, "AWS::Lambda::Function")
    return _service_id(root.name, None)


def _annotation_value(value: Any) -> dict[str, Any] | None:
    if isinstance(value, bool):
        return {"BooleanValue": value}
    if isinstance(value, (int, float)):
        return {"NumberValue": float(value)} if math.isfinite(value) else None
    if isinstance(value, str):
        return {"StringValue": value}
    return None


def _http(trace: Trace) -> dict[str, Any]:
    for root in trace.roots:
        http = root.entity.get("http")
        request = http.get("request") if isinstance(http, dict) else None
        if not isinstance(request, dict):
            continue
        response = http.get("response") if isinstance(http, dict) else None
        found: dict[str, Any] = {}
        for key, field in (
            ("HttpURL", "url"),
            ("HttpMethod", "method"),
            ("UserAgent", "user_agent"),
            ("ClientIp", "client_ip"),
        ):
            if isinstance(request.get(field), str):
                found[key] = request[field]
        status = response.get("status") if isinstance(response, dict) else None
        if isinstance(status, int) and not isinstance(status, bool):
            found["HttpStatus"] = status
        return found
    return {}


def summary(trace: Trace) -> dict[str, Any]:
    """A ``TraceSummary`` of an assembled trace (at least one node)."""
    annotations: dict[str, list[dict[str, Any]]] = {}
    owners: list[dict[str, Any]] = []
    stack = [(root, _owner_id(root)) for root in reversed(trace.roots)]
    while stack:
        node, owner = stack.pop()
        if node.document_root:
            owner = _owner_id(node)
            if owner not in owners:
                owners.append(owner)
        for key, value in node.annotations.items():
            shaped = _annotation_value(value)
            if shaped is None or not isinstance(key, str):
                continue
            values = annotations.setdefault(key, [])
            entry = next((v for v in values if v["AnnotationValue"] == shaped), None)
            if entry is None:
                entry = {"AnnotationValue": shaped, "ServiceIds": []}
                values.append(entry)
            if owner not in entry["ServiceIds"]:
                entry["ServiceIds"].append(owner)
        stack.extend((child, owner) for child in reversed(node.children))
    service_map = build_map([trace])
    service_ids = [
        _service_id(node.name, _node_type(node))
        for node in service_map.nodes.values()
        if node.type != "client"
    ]
    first = trace.roots[0]
    result: dict[str, Any] = {
        "Id": trace.trace_id,
        "StartTime": trace.start,
        "Duration": trace.duration,
        "ResponseTime": first.duration if first.duration is not None else trace.duration,
        "HasFault": trace.fault,
        "HasError": trace.error,
        "HasThrottle": trace.throttle,
        "IsPartial": trace.in_progress,
        "Http": _http(trace),
        "Annotations": annotations,
        "Users": [],
        "ServiceIds": service_ids or owners,
        "EntryPoint": _owner_id(first),
        "Revision": trace.documents,
    }
    return result


def _statistics(stats: _Stats) -> dict[str, Any]:
    throttles = min(stats.throttles, stats.errors)
    return {
        "OkCount": max(0, stats.count - stats.errors - stats.faults),
        "ErrorStatistics": {
            "ThrottleCount": throttles,
            "OtherCount": stats.errors - throttles,
            "TotalCount": stats.errors,
        },
        "FaultStatistics": {"OtherCount": stats.faults, "TotalCount": stats.faults},
        "TotalCount": stats.count,
        "TotalResponseTime": sum(stats.durations) / 1000.0,
    }


def _histogram(stats: _Stats) -> list[dict[str, Any]]:
    """Response times (seconds, to the millisecond) and how many took that long."""
    bins: dict[float, int] = {}
    for milliseconds in stats.durations:
        value = round(milliseconds / 1000.0, 3)
        bins[value] = bins.get(value, 0) + 1
    return [{"Value": value, "Count": count} for value, count in sorted(bins.items())]


def services(service_map: ServiceMap, start: float, end: float) -> list[dict[str, Any]]:
    """The map's nodes as X-Ray's ``Services``, edges by ``ReferenceId``."""
    references = {key: index for index, key in enumerate(service_map.nodes)}
    roots = {edge.target for edge in service_map.edges.values() if edge.source[0] == "client"}
    services = []
    for key, node in service_map.nodes.items():
        edges = [
            {
                "ReferenceId": references[edge.target],
                "StartTime": start,
                "EndTime": end,
                "SummaryStatistics": _statistics(edge.stats),
                "ResponseTimeHistogram": _histogram(edge.stats),
                "Aliases": [],
            }
            for edge in service_map.edges.values()
            if edge.source == key
        ]
        service: dict[str, Any] = {
            "ReferenceId": references[key],
            "Name": node.name,
            "Names": [node.name],
            "Root": key in roots,
            "State": "active" if node.type != "client" else "unknown",
            "StartTime": start,
            "EndTime": end,
            "Edges": edges,
        }
        kind = _node_type(node)
        if kind:
            service["Type"] = kind
        if node.type != "client":
            service["SummaryStatistics"] = _statistics(node.stats)
            service["ResponseTimeHistogram"] = _histogram(node.stats)
            service["DurationHistogram"] = _histogram(node.stats)
        services.append(service)
    return services
