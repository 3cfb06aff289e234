"""Every kind of evidence Copycat knows, one line each; the settings of a process say which are on.

Adding a signal: a module with a ``workers.signals.base.Signal`` subclass, and its line here. Its settings
group (``settings_model``) joins ``Settings`` under its name (``COPYCAT_<NAME>__...``), and ingest, query,
removal, fsck and copy detection take it up from ``enabled_signals``. The primary signal's object is the
video's frame matrix, recorded on the video row; it is always on.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

from workers.signals.base import Signal, SignalContext

SIGNALS: dict[str, str] = {
    "frames": "workers.signals.frames:FrameSignal",
    "dns": "workers.signals.dns:DnsSignal",
}
"""Signal name -> ``module:class``, in the order the query runs them (locating signals fuse in this order)."""
PRIMARY = "frames"


def signal_type(name: str) -> type[Signal]:
    """The class registered under ``name``; ``ValueError`` naming the known ones for any other name."""
    if name not in SIGNALS:
        raise ValueError(f"unknown signal {name!r}; known: {', '.join(SIGNALS)}")
    module, _, attribute = SIGNALS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def settings_groups() -> dict[str, type[BaseModel]]:
    """Each signal's settings model by its name, for those that have one."""
    return {name: model for name in SIGNALS if (model := signal_type(name).settings_model) is not None}


def enabled_signals(context: SignalContext) -> list[Signal[Any]]:
    """The signals these settings switch on, built for one process, primary first."""
    signals = [signal_type(name).create(context) for name in SIGNALS if signal_type(name).enabled(context.settings)]
    if not signals or signals[0].name != PRIMARY:
        raise ValueError(f"the primary signal {PRIMARY!r} must be registered first and always on")
    return signals
