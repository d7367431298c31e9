"""SnapStart: unique ids after a restore, and a ``Restore`` entity instead of a stale Init.

With ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` Lambda runs the init phase
once, when a version is published, snapshots the microVM, and later restores
*many* execution environments from that one snapshot. Three consequences:

* **Ids.** The id generator's state is in the snapshot, so every restored
  environment would draw the same "random" trace and entity ids (X-Ray merges or
  drops entities that share an id). After each restore it is reseeded from the
  OS's entropy, in an after-restore hook that ``configure()`` registers with
  ``snapshot_restore_py`` (AWS's "Handling uniqueness with Lambda SnapStart"
  asks exactly this of code that makes ids). It is the library's own generator
  (``_header.ID_RANDOM``; the otel backend's OTel ids come from it too): the
  global ``random`` is left as the snapshot holds it, so an application that
  seeded it on purpose keeps its sequence. (An OTel provider that is not the
  library's, with its own id generator, draws from the global ``random``; that
  application reseeds it after a restore itself, as AWS's guidance says.)
* **No stale timestamps.** The snapshot-time init ran maybe days before the
  request that restores it, which did not wait for it. It is not put in any
  trace; a summary of it (when it started, its duration and span count) goes
  into the Restore entity's metadata (``tracing.snapshot_init``).
* **Restore.** What the first request after a restore did wait for is the
  restore: the after-restore hooks and any ``tracing.span`` in them. They become
  a ``Restore`` subsegment of that invocation's trace, annotated
  ``ColdStart=true`` and ``InitType=snap-start``, with the same sampling rules
  as ``Init``. Its window opens in our hook (registered by ``configure()``, so
  usually before the application's own) and closes after the last hook: the
  hook appends a closing hook while the runtime runs the list.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ._header import reseed_ids
from ._init_phase import InitPhase
from ._runtime import Runtime

__all__ = ["SNAP_START", "install"]

log = logging.getLogger("tracing.snapstart")

SNAP_START = "snap-start"


def install(runtime: Runtime) -> bool:
    """Register the snapshot and restore hooks; False when the runtime has no hooks."""
    try:
        import snapshot_restore_py
    except ImportError:
        log.warning(
            "tracing: SnapStart without snapshot_restore_py: ids could repeat across "
            "restored environments (install snapshot-restore-py)"
        )
        return False
    snapshot_restore_py.register_before_snapshot(_before_snapshot, runtime)
    snapshot_restore_py.register_after_restore(_after_restore, runtime, snapshot_restore_py)
    return True


def _before_snapshot(runtime: Runtime) -> None:
    try:
        if runtime.init is not None:
            runtime.init.mark_end()  # before-snapshot hooks are init work
    except Exception:
        log.debug("tracing: before-snapshot hook failed", exc_info=True)


def _after_restore(runtime: Runtime, hooks: Any) -> None:
    # NOTE: first, and whatever else fails: ids drawn from here on must not repeat
    # those of the other environments restored from the same snapshot.
    reseed_ids()
    try:
        snapshot = runtime.init
        settings = runtime.settings
        restore = InitPhase(
            time.time(),
            settings.max_init_spans,
            settings.init_trace,
            name="Restore",
            init_type=SNAP_START,
        )
        if snapshot is not None:
            restore.notes = snapshot.summary()
            snapshot.discard()
        runtime.init = restore
        # Run after the application's own after-restore hooks: the runtime iterates
        # the list as it grows, so a hook appended now runs last.
        hooks.register_after_restore(restore.mark_end)
    except Exception:
        log.warning("tracing: could not open the Restore window", exc_info=True)
