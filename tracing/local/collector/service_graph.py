"""The service map: X-Ray's trace map, built from the stored traces.

**Nodes** are what X-Ray's console draws: the *client* (requests that entered
without a traced caller), each service or function (a segment, or a Lambda
invocation named by its ``Service`` annotation), each AWS resource an ``aws``
subsegment names (a queue by ``queue_url``, a table by ``table_name``, a bucket,
a topic, a Kinesis stream by ``stream_name``, an EventBridge event bus by
``event_bus_name``, a Step Functions state machine by ``state_machine_arn``, a
DynamoDB table's stream by ``stream_arn``, a function called with ``Invoke``;
other services by name, such as SSM), and each remote HTTP host
(``namespace: "remote"``).

**Edges** carry the calls between them: count, average and p95 latency (the
callee's duration as the caller saw it), and the error (4xx), fault (5xx) and
throttle (429) rates.

**One node per function.** A consumer segment processed inside a Lambda
invocation carries ``LinkedTraceId`` (the invocation's trace): its node is that
function's, labelled "Lambda function" on a one-trace map as on the map of all
traces, where the function's own segments (``origin``
``AWS::Lambda::Function``) say so.

**The SQS hop** is drawn as the console draws it, producer -> queue -> consumer:
a ``SendMessage`` subsegment is an edge to the queue, and the consumer segment
the library puts under it (annotated ``Queue``) is an edge from the queue to the
consuming service, with that message's processing time and outcome; so a
poison message shows as the fault rate of the queue -> worker edge. A batch
invocation whose records are SQS messages adds no client edge: its messages are
already counted on the queue's edge. ``Init`` is no request either: only its
calls (the SSM read at import) count, for its function.

**The other hops** are drawn the same way, producer -> resource -> consumer:

* a Kinesis consumer segment (annotated ``Stream``) is an edge from the stream,
  a DynamoDB Streams one (annotated ``TableStream``) from the table's stream;
  their batch invocations (``Kinesis record`` and ``DynamoDB record``
  subsegments) add no client edge, as for SQS;
* a consumer segment under a call to another resource than the one it consumed
  from adds an edge from that resource to it, counting the records with no
  time: the table feeding its stream (under the ``PutItem``), an event bus or
  topic delivering to a queue (under the ``PutEvents`` or ``Publish``);
* whatever runs directly under a ``PutEvents``, ``Publish`` or
  ``StartExecution`` call (a Lambda invocation given that call as parent, or
  Lambda's own segment in AWS) is an edge from the event bus, topic or state
  machine to that function, with the invocation's time and outcome; the AWS
  segments of an SNS topic or a state machine (``origin`` ``AWS::SNS...``,
  ``AWS::StepFunctions...``) are that topic's or state machine's node;
* a function invoked with ``Invoke`` is counted once, on the call's edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# (imported from here by the views and xray_shapes: re-exported)
from tracing.local.collector._map_model import _TYPE_LABELS as _TYPE_LABELS
from tracing.local.collector._map_model import MapEdge as MapEdge
from tracing.local.collector._map_model import MapNode as MapNode
from tracing.local.collector._map_model import _item as _item
from tracing.local.collector._map_model import _Stats as _Stats
from tracing.local.collector._map_model import _stats as _stats
from tracing.local.collector.traces import Node, Trace

__all__ = ["MapEdge", "MapNode", "ServiceMap", "build_map"]

#: How AWS services are named on the map (by the subsegment's name, lowercased).
_AWS_NAMES = {
    "sqs": "SQS",
    "dynamodb": "DynamoDB",
    "ssm": "SSM",
    "s3": "S3",
    "sns": "SNS",
    "lambda": "Lambda",
    "sts": "STS",
    "kms": "KMS",
    "secretsmanager": "Secrets Manager",
    "secrets manager": "Secrets Manager",
    "events": "EventBridge",
    "kinesis": "Kinesis",
    "states": "Step Functions",
    "streams.dynamodb": "DynamoDB Streams",
}


#: The resource an AWS call is about: (aws block field, node type, how to name it).
def _last(separator: str) -> Callable[[str], str]:
    return lambda value: value.rstrip(separator).rsplit(separator, 1)[-1]


def _machine(value: str) -> str:
    """A state machine's name from its ARN (``...:stateMachine:<name>[:version]``)."""
    return value.partition(":stateMachine:")[2].partition(":")[0] or _last(":")(value)


def _table_of_stream(value: str) -> str:
    """A DynamoDB table's name from its stream's ARN (``...:table/<name>/stream/<label>``)."""
    return value.partition(":table/")[2].partition("/")[0] or _last("/")(value)


_RESOURCES: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("queue_url", "queue", _last("/")),
    ("table_name", "table", str),
    ("bucket_name", "bucket", str),
    ("topic_arn", "topic", _last(":")),
    ("stream_name", "stream", _last("/")),
    ("event_bus_name", "bus", _last("/")),
    ("state_machine_arn", "state_machine", _machine),
    ("stream_arn", "table_stream", _table_of_stream),
    # As OpenTelemetry's botocore instrumentation names them (aws.sns.topic.arn...).
    ("sns.topic.arn", "topic", _last(":")),
    ("kinesis.stream_name", "stream", _last("/")),
    ("step_functions.state_machine.arn", "state_machine", _machine),
)
#: Consumer segments' annotations naming what they consumed from.
_CONSUMED = (("Queue", "queue"), ("Stream", "stream"), ("TableStream", "table_stream"))
#: The subsegment a batch invocation gets per record it consumes.
_RECORDS = frozenset({"SQS message", "Kinesis record", "DynamoDB record"})
#: Resources that deliver to what runs under the call to them (a function
#: invoked with the call as its parent): the edge is from the resource.
_HOPS = frozenset({"queue", "topic", "stream", "table_stream", "bus", "state_machine"})
#: AWS's own segments for a resource (``origin``): that resource's node.
_ORIGINS = (("AWS::SNS", "topic"), ("AWS::StepFunctions", "state_machine"))
_MAX_LABEL = 60  # characters of a name drawn on the map
_MAX_KIND = 22  # characters of a node's type that fit its box as they are


@dataclass
class ServiceMap:
    """Nodes and edges built from traces (see the module docstring for the rules)."""

    nodes: dict[tuple[str, str], MapNode] = field(default_factory=dict)
    edges: dict[tuple[tuple[str, str], tuple[str, str]], MapEdge] = field(default_factory=dict)
    traces: int = 0
    _invoked: set[str] = field(default_factory=set, repr=False)

    def node(self, key: tuple[str, str]) -> MapNode:
        found = self.nodes.get(key)
        if found is None:
            found = self.nodes[key] = MapNode(key)
        return found

    def call(
        self, source: tuple[str, str], target: tuple[str, str], node: Node, trace: str
    ) -> None:
        self.node(source)
        self.node(target).stats.add(node, trace)
        edge = self.edges.get((source, target))
        if edge is None:
            edge = self.edges[(source, target)] = MapEdge(source, target)
        edge.stats.add(node, trace)

    def feed(self, source: tuple[str, str], target: tuple[str, str], trace: str) -> None:
        """A resource feeding another (a table its stream): counted, with no time."""
        self.node(source)
        self.node(target).stats.count_only(trace)
        edge = self.edges.get((source, target))
        if edge is None:
            edge = self.edges[(source, target)] = MapEdge(source, target)
        edge.stats.count_only(trace)

    def add_trace(self, trace: Trace) -> None:
        """Add one assembled trace's calls."""
        self.traces += 1
        functions = _functions_by_parent(trace)
        # Functions this trace invokes: their invocations are the callee of that
        # Invoke edge, not requests from a client (Lambda's own segments, which
        # link the two, are not in a local store).
        self._invoked = {
            key[1]
            for _, node in trace.walk()
            if node.entity.get("namespace") == "aws"
            for key in (_aws_node(node),)
            if key[0] == "service"
        }
        # (node, whose work it is, a root of the trace, the resource of the AWS
        # call it sits directly under)
        stack: list[tuple[Node, tuple[str, str] | None, bool, tuple[str, str] | None]] = [
            (root, None, True, None) for root in trace.roots
        ]
        while stack:
            node, owner, top, via = stack.pop()
            here = owner
            resource = None
            if top or node.kind == "segment" or (via is not None and node.document_root):
                # (a document's root under an AWS call: what that call started)
                here = self._entry(node, owner, top, via, functions, trace.trace_id)
            elif node.entity.get("namespace") == "aws":
                resource = _aws_node(node)
                self.call(_owner(owner), resource, node, trace.trace_id)
            elif node.entity.get("namespace") == "remote" and not _has_segment(node):
                self.call(_owner(owner), ("remote", _remote_name(node)), node, trace.trace_id)
            stack.extend((child, here, False, resource) for child in reversed(node.children))

    def _entry(
        self,
        node: Node,
        owner: tuple[str, str] | None,
        top: bool,
        via: tuple[str, str] | None,
        functions: dict[str, str],
        trace_id: str,
    ) -> tuple[str, str]:
        """A document root or a nested segment: whose work it is, and who called it."""
        service = node.annotations.get("Service")
        if node.kind == "segment":
            key = ("service", node.name)
            origin = node.entity.get("origin")
            if origin == "AWS::Lambda::Function":
                self.node(key).function = True
            elif isinstance(origin, str):
                for prefix, kind in _ORIGINS:
                    if origin.startswith(prefix):
                        name = _machine(node.name) if kind == "state_machine" else node.name
                        key = (kind, _last(":")(name)[:200] or node.name)
                        break
        else:  # a Lambda invocation (or its Init): the function's own segment is AWS's
            if not (isinstance(service, str) and service):
                service = functions.get(node.parent_id or "", "(unknown function)")
            key = ("service", str(service))
            self.node(key).function = True
        consumed = _consumed(node)
        if consumed is not None:
            if node.kind == "segment" and "LinkedTraceId" in node.annotations:
                # Processed in a Lambda invocation (whose trace it links to): the
                # function's node, as its own invocations' traces name it.
                self.node(key).function = True
            self.call(consumed, key, node, trace_id)  # a consumer segment
            if via is not None and _feeds(via, consumed):
                self.feed(via, consumed, trace_id)
        elif node.is_init or _is_batch(node):
            self.node(key)  # no request: only its calls count
        elif via is not None and via == key:
            self.node(key)  # a function invoked by the call above: that edge counts it
        elif via is not None and via[0] in _HOPS:
            self.call(via, key, node, trace_id)  # delivered by a bus, topic, state machine...
        elif top and node.kind == "subsegment" and key[1] in self._invoked:
            self.node(key)  # invoked by a function of this trace: that edge counts it
        elif top or owner is None:
            self.call(("client", "client"), key, node, trace_id)
        elif owner != key:  # (Lambda's function segment under its service segment: one node)
            self.call(owner, key, node, trace_id)  # a traced downstream service
        return key

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the page's script, and for tests)."""
        return {
            "nodes": [_item(n, _stats(n.stats)) for n in self.nodes.values()],
            "edges": [
                {"source": list(e.source), "target": list(e.target), **_stats(e.stats)}
                for e in self.edges.values()
            ],
            "traces": self.traces,
        }


def _owner(owner: tuple[str, str] | None) -> tuple[str, str]:
    return owner if owner is not None else ("service", "(unknown function)")


def _is_batch(node: Node) -> bool:
    return bool(node.children) and all(c.name in _RECORDS for c in node.children)


def _feeds(via: tuple[str, str], consumed: tuple[str, str]) -> bool:
    """The resource of the call above delivers to the one consumed from.

    An event bus or topic delivering to a queue; a table feeding its stream.
    """
    return via != consumed and (via[0] in _HOPS or via == ("table", consumed[1]))


def _consumed(node: Node) -> tuple[str, str] | None:
    """The queue or stream a consumer segment consumed from (by its annotation)."""
    for annotation, kind in _CONSUMED:
        value = node.annotations.get(annotation)
        if isinstance(value, str) and value:
            return (kind, value[:200])
    return None


def _has_segment(node: Node) -> bool:
    """A remote call whose callee is traced: the callee's segment is the node."""
    return any(child.kind == "segment" for child in node.children)


def _functions_by_parent(trace: Trace) -> dict[str, str]:
    """Lambda's function segment id -> the function's service (for ``Init``).

    Every document's root counts, not only the trace's: a function invoked with
    a call of this trace as its parent (an EventBridge target, locally) has its
    ``Init`` and its invocation under that call, as siblings.
    """
    found: dict[str, str] = {}
    for _, node in trace.walk():
        if not node.document_root:
            continue
        service = node.annotations.get("Service")
        if node.parent_id and isinstance(service, str) and service:
            found.setdefault(node.parent_id, service)
    return found


def _remote_name(node: Node) -> str:
    """A remote host: from the recorded URL (OTel names HTTP spans by their method)."""
    http = node.entity.get("http")
    request = http.get("request") if isinstance(http, dict) else None
    url = request.get("url") if isinstance(request, dict) else None
    if isinstance(url, str) and url:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if host:
            return host[:200]
    return node.name


def _aws_node(node: Node) -> tuple[str, str]:
    aws = node.entity.get("aws")
    aws = aws if isinstance(aws, dict) else {}
    service = node.name.strip().lower()
    for field_name, kind, name_of in _RESOURCES:
        value = aws.get(field_name)
        if isinstance(value, str) and value:
            return (kind, name_of(value)[:200] or value[:200])
    function = aws.get("function_name")
    if service == "lambda" and isinstance(function, str) and function:
        return ("service", function.rsplit(":", 1)[-1][:200])  # another function
    return ("aws", _AWS_NAMES.get(service, node.name))


def build_map(traces: Iterable[Trace]) -> ServiceMap:
    """The map of ``traces`` (assembled with :func:`tracing.local.collector.traces.assemble`)."""
    service_map = ServiceMap()
    for trace in traces:
        service_map.add_trace(trace)
    return service_map
