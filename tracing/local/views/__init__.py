"""Views of stored traces: the terminal table and tree, the HTML timeline, the
service map and the trace list. They read what :mod:`tracing.local.collector`
assembled and never write to it.
"""
