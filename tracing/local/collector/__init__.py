"""The local collector: what ``tracing daemon`` is made of.

Its intake (X-Ray documents and OTLP spans over UDP, OTLP/HTTP, and X-Ray's
``PutTraceSegments``), the trace store, trace assembly, the service graph, X-Ray's
filter-expression language and X-Ray's query and sampling APIs.
"""
