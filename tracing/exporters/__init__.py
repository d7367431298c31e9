"""Where finished documents go: the exporters behind ``configure(exporter=...)``.

Not backends: a backend (``tracing.backends``) is the library the user's spans
come from; an exporter only writes what the core hands it. ``xray_udp`` (X-Ray
documents over UDP, the default), ``otlp_udp`` (OTLP spans in X-Ray's
``T1S``/``T1U`` datagrams), ``otlp_http`` (OTLP/HTTP protobuf), ``xray_otlp``
(the same, SigV4-signed, to X-Ray's OTLP endpoint) and ``provider`` (the OTel
tracer provider's own exporters). Each is imported by ``configure()``
only when chosen.
"""
