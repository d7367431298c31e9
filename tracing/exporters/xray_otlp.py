"""``exporter="xray-otlp"``: OTLP/HTTP straight to X-Ray's OTLP endpoint, SigV4-signed.

No daemon, no collector: the spans of ``exporter="otlp"`` (the same
``_otlp_spans.py`` trees, annotations listed in ``aws.xray.annotations``) are
posted as protobuf to ``https://xray.<region>.amazonaws.com/v1/traces``, signed
with AWS Signature Version 4 for the service ``xray``. This is the way to X-Ray
that does not go through the X-Ray daemon's UDP protocol (the daemon, like
aws-xray-sdk, reaches end of support on 2027-02-25). X-Ray's OTLP endpoint takes
spans only once CloudWatch Transaction Search is enabled in the account and
region (``aws xray update-trace-segment-destination --destination
CloudWatchLogs``); a refusal saying so is explained in one log line.

* **Where.** The region is ``AWS_REGION``, else botocore's chain
  (``AWS_DEFAULT_REGION``, the profile's ``region``); without one, configure
  refuses ``exporter="xray-otlp"``. The endpoint follows botocore's own
  resolution, resolved once at the first export: ``AWS_ENDPOINT_URL_XRAY``, then
  ``AWS_ENDPOINT_URL``, then the shared config's ``services`` sections (unless
  ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``), else ``xray.<region>.<the
  partition's DNS suffix>`` (``amazonaws.com.cn`` in China). FIPS or dual-stack
  settings are resolved by a botocore ``xray`` client made once for that.
* **Who.** Credentials come from botocore's credential chain (the function's role
  in Lambda, the task role on ECS, a profile elsewhere), looked up once on a
  session of our own and kept: refreshable credentials refresh themselves when
  read, before each request. Nothing of botocore is imported before the first
  export (cold start). Without credentials nothing is sent; the lookup is tried
  again a minute later.
* **When.** As ``otlp``: spans are buffered during a unit of work and posted when
  it ends, at most 2 s (``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT`` may shorten it),
  one retry on 429/502/503/504. ``OTEL_EXPORTER_OTLP[_TRACES]_COMPRESSION=gzip``
  is honoured; the OTLP endpoint and header variables are not (they are for
  collectors). X-Ray's limits are kept: a span over 200 KB is shrunk as
  ``otlp-udp`` shrinks spans, at most 10,000 spans and 3 MiB per request.
* **Errors** are logged once per kind (then at debug) and counted in ``failed``:
  no credentials, a refused signature (403), Transaction Search not enabled, an
  unreachable endpoint. Nothing raises into the handler.
* **Trace ids.** X-Ray's OTLP endpoint takes W3C trace ids as well as X-Ray ones.
  We send the 16 bytes of the X-Ray trace id we already have (``1-<8 hex epoch
  seconds>-<24 hex>`` without its dashes: a valid W3C id whose first four bytes
  are the trace's start), so the spans join the trace Lambda itself records.

How it differs from ADOT's ``OTLPAwsSpanExporter`` (aws-opentelemetry-distro,
``exporter/otlp/aws/traces``), which subclasses the OTel SDK's
``OTLPSpanExporter`` and hands it a ``requests.Session`` (``AwsAuthSession``)
that signs each POST with botocore's ``SigV4Auth`` on an ``AWSRequest``:

* no OTel exporter, no ``requests``, no OTel SDK: the standard library's
  ``http.client``, one kept-alive connection, our own protobuf writer;
* botocore is imported at the first export, not at start-up, and the endpoint is
  botocore's resolution (the ``AWS_ENDPOINT_URL*`` variables redirect it), where
  ADOT takes ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` and a region parsed from it;
* the signature is written here (:func:`sign`, SigV4 from its specification, a
  few HMACs over a canonical request that has a fixed shape for this one POST,
  the signing key kept for the day): the tests verify every request with
  botocore's ``SigV4Auth``, and ``benchmarks/bench_export.py`` times both;
* failures are explained (what to enable for Transaction Search) and logged once
  rather than on every export (opentelemetry-specification#4503 asks for SigV4 in
  the OTel SDKs' exporters themselves; until then each vendor wraps them).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._otlp_fit import fit_spans, pack_requests
from .._sigv4 import SERVICE, SigningKeys, canonical_host, configured_region, resolve_endpoint, sign
from .otlp_http import MAX_REQUEST, MAX_TIMEOUT_S, OTLPHTTPEmitter, endpoint_settings

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from botocore.session import Session

__all__ = [
    "SERVICE",
    "SigningKeys",
    "TransactionSearchDisabledError",
    "XRayOTLPEmitter",
    "configured_region",
    "resolve_endpoint",
    "sign",
]

log = logging.getLogger("tracing.emitter")

#: X-Ray's OTLP endpoint refuses a span over 200 KB.
MAX_SPAN = 200_000
#: ... and a request of more than 10,000 spans.
MAX_SPANS_PER_REQUEST = 10_000
#: How long to wait before looking for credentials again after none were found.
CREDENTIALS_RETRY_S = 60.0
_TRANSACTION_SEARCH = re.compile(
    r"transaction\s*search|segment\s*destination|cloudwatch\s*logs", re.IGNORECASE
)
_EXPLAIN_TRANSACTION_SEARCH = (
    "X-Ray's OTLP endpoint takes spans only with CloudWatch Transaction Search enabled "
    "in this account and region: turn it on in the CloudWatch console (Application "
    "Signals > Transaction Search) or run `aws xray update-trace-segment-destination "
    "--destination CloudWatchLogs`"
)


class TransactionSearchDisabledError(RuntimeError):
    """X-Ray refused the spans: Transaction Search is not enabled."""


class NoCredentialsError(RuntimeError):
    """botocore's credential chain found no credentials."""


def _said(payload: bytes) -> str:
    """The message of an AWS error answer (JSON ``message``, or its text), short."""
    text = payload.decode("utf-8", "replace")
    try:
        found = json.loads(text)
        if isinstance(found, dict):
            text = str(found.get("message") or found.get("Message") or text)
    except ValueError:
        pass
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:300]


class XRayOTLPEmitter(OTLPHTTPEmitter):
    """Buffers spans and posts them, SigV4-signed, to X-Ray's OTLP endpoint on flush.

    Args:
        resource_attributes: The ``Resource`` of every request.
        region: The signing region; :func:`configured_region` when None.
        session: A botocore session to take credentials and the endpoint from
            (tests, benchmarks); one of our own, made at the first export, when None.

    Raises:
        ValueError: No region is configured.
    """

    def __init__(
        self,
        resource_attributes: Mapping[str, Any],
        region: str | None = None,
        session: Session | None = None,
    ) -> None:
        region = region or configured_region()
        if not region:
            raise ValueError(
                "exporter='xray-otlp' signs for a region and found none: set AWS_REGION "
                "(or AWS_DEFAULT_REGION, or the profile's region)"
            )
        settings = endpoint_settings()
        super().__init__(
            resource_attributes,
            {
                # Until the first export resolves it through botocore.
                "url": f"https://xray.{region}.amazonaws.com/v1/traces",
                "headers": {},
                "timeout_s": settings.get("timeout_s", MAX_TIMEOUT_S),
                "gzip": settings.get("gzip", False),
                "certificate": os.environ.get("AWS_CA_BUNDLE") or None,
            },
        )
        self.region = region
        self._session = session
        self._credentials: Credentials | None = None
        self._resolved = False
        self._next_lookup = 0.0
        self._lock = threading.Lock()
        self._keys = SigningKeys()

    # -- botocore, at the first export -----------------------------------------------

    def _setup(self) -> Credentials:
        """The credentials (and, the first time, the endpoint). Raises when there are none."""
        with self._lock:
            if self._credentials is not None:
                return self._credentials
            now = time.monotonic()
            if now < self._next_lookup:
                raise NoCredentialsError(
                    "no AWS credentials (botocore's chain is asked again at most once a minute)"
                )
            self._next_lookup = now + CREDENTIALS_RETRY_S
            session = self._session
            if session is None:
                import botocore.session

                session = self._session = botocore.session.Session()
            if not self._resolved:
                endpoint = resolve_endpoint(session, self.region)
                self._use_url(endpoint.rstrip("/") + "/v1/traces")
                self._drop_connection()
                self._resolved = True
            try:
                credentials = session.get_credentials()
            except Exception as exc:  # a provider of the chain failed (IMDS, container role)
                raise NoCredentialsError(f"no AWS credentials: {exc}") from exc
            if credentials is None:
                raise NoCredentialsError(
                    "botocore's credential chain found no AWS credentials (a role, "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
                )
            self._credentials = credentials
            return credentials

    # -- the hooks of OTLPHTTPEmitter ------------------------------------------------

    def _requests(self, spans: list[bytes]) -> Iterator[bytes]:
        fitting = fit_spans(self.request, spans, MAX_SPAN)
        for start in range(0, len(fitting), MAX_SPANS_PER_REQUEST):
            yield from pack_requests(
                self.request, fitting[start : start + MAX_SPANS_PER_REQUEST], MAX_REQUEST
            )

    def _signed(self, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        credentials = self._setup()
        # Refreshable credentials refresh here when they are about to expire.
        frozen = credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise NoCredentialsError("the AWS credentials found have no key")
        signed = sign(
            self.url,
            headers,
            body,
            self.region,
            frozen.access_key,
            frozen.secret_key,
            frozen.token,
            datetime.datetime.now(datetime.timezone.utc),
            self._keys,
        )
        out = {
            **headers,
            "Host": canonical_host(self.url),
            "X-Amz-Date": signed.amz_date,
            "Authorization": signed.authorization,
        }
        if frozen.token:
            out["X-Amz-Security-Token"] = frozen.token
        return out

    def _refusal(self, status: int, payload: bytes) -> Exception:
        said = _said(payload)
        if 400 <= status < 500 and _TRANSACTION_SEARCH.search(said):
            return TransactionSearchDisabledError(
                f"{_EXPLAIN_TRANSACTION_SEARCH} (HTTP {status}: {said})"
            )
        if status == 403:
            return PermissionError(
                f"HTTP 403 from {self.url}: {said or 'refused'} (the credentials' signature "
                "was refused, or their role may not write to X-Ray)"
            )
        return RuntimeError(f"HTTP {status} from {self.url}" + (f": {said}" if said else ""))
