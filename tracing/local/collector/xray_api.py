"""The X-Ray daemon's sampling proxy, locally: ``GetSamplingRules`` and ``GetSamplingTargets``.

The X-Ray daemon (and the CloudWatch agent) answer these two X-Ray calls on the
TCP side of their address, signing and forwarding them to X-Ray; SDKs poll them
there, unsigned, for centralized sampling. ``tracing daemon`` answers them itself
from local rules, with X-Ray's REST-JSON shapes (``POST /GetSamplingRules``,
``POST /SamplingTargets``), so ``boto3.client("xray", endpoint_url=...)`` and
``TRACING_SAMPLING_RULES=xray`` work against it unchanged.

The rules come from a file in aws-xray-sdk's local format (version 1 or 2, as
``TRACING_SAMPLING_RULES`` takes; rules become X-Ray rules in file order, the
default becomes ``Default``), or in X-Ray's own ``GetSamplingRules`` answer
(``aws xray get-sampling-rules > rules.json``), or X-Ray's default rule without a
file. Every client gets each rule's whole reservoir (``ReservoirQuota`` =
``ReservoirSize``): there is one daemon per machine, usually one client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracing._sampling_rules import DEFAULT_RULES, MAX_RULES_FILE, RulesError, parse_rules

__all__ = ["QUOTA_TTL_S", "TARGET_INTERVAL_S", "SamplingAPIServer", "SamplingRules"]

log = logging.getLogger("tracing.local.collector.daemon")

#: ``Interval`` in every target: seconds until a client reports again.
TARGET_INTERVAL_S = 10
#: A quota's life (``ReservoirQuotaTTL`` = now + this).
QUOTA_TTL_S = 60
_MAX_BODY = 1024 * 1024
_ACCOUNT_ARN = "arn:aws:xray:us-east-1:000000000000:sampling-rule/"
_RULE_KEYS = (
    "RuleName",
    "ResourceARN",
    "Priority",
    "FixedRate",
    "ReservoirSize",
    "ServiceName",
    "ServiceType",
    "Host",
    "HTTPMethod",
    "URLPath",
    "Version",
)


def _rule_name(description: Any, index: int, taken: set[str]) -> str:
    """A unique ``RuleName`` (1-32 of ``[A-Za-z0-9_-]``) from a local rule's description."""
    text = description if isinstance(description, str) else ""
    name = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in text)
    name = name.strip("-")[:32] or f"rule-{index + 1}"
    if name in taken or name == "Default":
        name = f"{name[:24]}-{index + 1}"
    taken.add(name)
    return name


def _record(rule: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "SamplingRule": {
            **rule,
            "RuleARN": _ACCOUNT_ARN + rule["RuleName"],
            "Attributes": {},
        },
        "CreatedAt": now,
        "ModifiedAt": now,
    }


def _from_local(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """aws-xray-sdk's local format as X-Ray rules (validated by ``parse_rules``)."""
    parse_rules(document)
    version = document["version"]
    host_key = "service_name" if version == 1 else "host"
    rules = []
    taken: set[str] = set()
    for index, item in enumerate(document.get("rules", [])):
        rules.append(
            {
                "RuleName": _rule_name(item.get("description"), index, taken),
                "ResourceARN": "*",
                "Priority": min(index + 1, 9999),
                "FixedRate": float(item["rate"]),
                "ReservoirSize": item["fixed_target"],
                "ServiceName": item.get("service_name", "*") if version == 2 else "*",
                "ServiceType": "*",
                "Host": item.get(host_key, "*"),
                "HTTPMethod": item.get("http_method", "*"),
                "URLPath": item.get("url_path", "*"),
                "Version": 1,
            }
        )
    default = document["default"]
    rules.append(
        {
            "RuleName": "Default",
            "ResourceARN": "*",
            "Priority": 10000,
            "FixedRate": float(default["rate"]),
            "ReservoirSize": default["fixed_target"],
            "ServiceName": "*",
            "ServiceType": "*",
            "Host": "*",
            "HTTPMethod": "*",
            "URLPath": "*",
            "Version": 1,
        }
    )
    return rules


def _from_xray(records: Any) -> list[dict[str, Any]]:
    """X-Ray's own ``SamplingRuleRecords`` (or a list of ``SamplingRule``)."""
    if not isinstance(records, list):
        raise RulesError("'SamplingRuleRecords' must be a list")
    rules = []
    for index, record in enumerate(records):
        rule = record.get("SamplingRule", record) if isinstance(record, Mapping) else None
        if not isinstance(rule, Mapping) or any(key not in rule for key in _RULE_KEYS):
            raise RulesError(f"SamplingRuleRecords[{index}] lacks one of {', '.join(_RULE_KEYS)}")
        rules.append({key: rule[key] for key in _RULE_KEYS})
    return rules


class SamplingRules:
    """The rules the daemon serves, and the statistics clients report.

    Args:
        path: A rules file (see the module); X-Ray's default rule if ``None``.

    Raises:
        RulesError: The file is unreadable or not valid rules.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.loaded_at = time.time()
        document: Any = DEFAULT_RULES
        if path is not None:
            try:
                with open(path, "rb") as file:
                    data = file.read(MAX_RULES_FILE + 1)
                if len(data) > MAX_RULES_FILE:
                    raise RulesError(f"larger than {MAX_RULES_FILE} bytes")
                document = json.loads(data)
            except OSError as exc:
                raise RulesError(f"cannot read sampling rules file {path!r}: {exc}") from None
            except (ValueError, RecursionError) as exc:
                raise RulesError(f"sampling rules file {path!r}: {exc}") from None
        try:
            if isinstance(document, Mapping) and "SamplingRuleRecords" in document:
                rules = _from_xray(document["SamplingRuleRecords"])
            else:
                rules = _from_local(document)
        except RulesError as exc:
            raise RulesError(f"sampling rules file {path!r}: {exc}") from None
        self.rules = {rule["RuleName"]: rule for rule in rules}
        self._lock = threading.Lock()
        #: RuleName -> totals of RequestCount, SampledCount, BorrowCount reported.
        self.statistics: dict[str, dict[str, int]] = {}
        #: ClientIDs that reported (at most 10,000 remembered).
        self.clients: set[str] = set()

    def get_sampling_rules(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The ``GetSamplingRules`` answer: every rule on one page."""
        return {"SamplingRuleRecords": [_record(r, self.loaded_at) for r in self.rules.values()]}

    def get_sampling_targets(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The ``GetSamplingTargets`` answer for a ``SamplingStatisticsDocuments`` list.

        Raises:
            ValueError: The request is not a valid one (HTTP 400).
        """
        documents = body.get("SamplingStatisticsDocuments")
        if not isinstance(documents, list) or len(documents) > 25:
            raise ValueError("SamplingStatisticsDocuments must be a list of at most 25")
        now = time.time()
        targets, unprocessed = [], []
        for document in documents:
            if not isinstance(document, Mapping):
                raise ValueError("each statistics document must be an object")
            name = document.get("RuleName")
            counts = [document.get(k, 0) for k in ("RequestCount", "SampledCount", "BorrowCount")]
            client = document.get("ClientID")
            if (
                not isinstance(name, str)
                or not isinstance(client, str)
                or not all(
                    isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts
                )
            ):
                raise ValueError("RuleName, ClientID and counts are required and typed")
            rule = self.rules.get(name)
            if rule is None:
                unprocessed.append(
                    {"RuleName": name, "ErrorCode": "400", "Message": "no such sampling rule"}
                )
                continue
            self._count(name, client, counts)
            targets.append(
                {
                    "RuleName": name,
                    "FixedRate": rule["FixedRate"],
                    "ReservoirQuota": rule["ReservoirSize"],
                    "ReservoirQuotaTTL": now + QUOTA_TTL_S,
                    "Interval": TARGET_INTERVAL_S,
                }
            )
        return {
            "SamplingTargetDocuments": targets,
            "LastRuleModification": self.loaded_at,
            "UnprocessedStatistics": unprocessed,
        }

    def _count(self, name: str, client: str, counts: list[int]) -> None:
        with self._lock:
            totals = self.statistics.setdefault(
                name, {"RequestCount": 0, "SampledCount": 0, "BorrowCount": 0}
            )
            for key, value in zip(totals, counts, strict=True):
                totals[key] += value
            if len(self.clients) < 10_000:
                self.clients.add(client)


class SamplingAPIServer:
    """Serves X-Ray's REST-JSON calls over HTTP in a thread: the sampling calls
    from :class:`SamplingRules`, and any operations added with :meth:`add`
    (the query API of ``xray_query.py``).

    Args:
        address: ``(host, port)`` to bind (TCP); port 0 picks one.
        rules: What the sampling calls answer; without them, they are not served.
    """

    def __init__(self, address: tuple[str, int], rules: SamplingRules | None) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                server.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("sampling api: %s", format % args)

        self.rules = rules
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        if rules is not None:
            self.operations["/GetSamplingRules"] = rules.get_sampling_rules
            self.operations["/SamplingTargets"] = rules.get_sampling_targets
        self._server = ThreadingHTTPServer(address, Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tracing-collector-sampling", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def add(self, operations: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
        """Serve more operations: HTTP path -> a function of the JSON body.

        A function raising ``ValueError`` answers 400 ``InvalidRequestException``.
        """
        self.operations = {**self.operations, **operations}

    def start(self) -> SamplingAPIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        route = request.path.split("?", 1)[0]
        operation = self.operations.get(route)
        try:
            length = int(request.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            request.close_connection = True
            self._answer(request, 413, "InvalidRequestException", {"message": "body too large"})
            return
        data = request.rfile.read(length)
        if operation is None:
            self._answer(request, 404, "UnknownOperationException", {"message": route})
            return
        try:
            body = json.loads(data) if data.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            answer = operation(body)
        except (ValueError, RecursionError) as exc:
            self._answer(request, 400, "InvalidRequestException", {"message": str(exc)[:200]})
            return
        except Exception:  # never let one request stop the daemon
            log.exception("tracing collector: X-Ray API request %s failed", route)
            self._answer(request, 500, "InternalFailure", {"message": "internal error"})
            return
        self._answer(request, 200, None, answer)

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler, status: int, error: str | None, body: dict[str, Any]
    ) -> None:
        if error is not None:
            body = {"__type": error, **body}
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error is not None:
            request.send_header("x-amzn-ErrorType", error)
        request.end_headers()
        request.wfile.write(data)
