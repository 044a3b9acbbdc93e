"""Identifiers that must be the same every time we write: tracking UIDs, our series UIDs, content keys.

A finding's tracking UID joins its AI SR group, its review SR group and its GSPS
graphics, in every object ever written for it, so it derives from (series, model
name, finding id) alone. UIDs are "2.25." + the integer of a UUID version 5
(PS3.5 B.2), which needs no registered root.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:radiology-ai-workstation:results")


def derived_uid(*parts: str) -> str:
    return f"2.25.{uuid.uuid5(_NAMESPACE, chr(31).join(parts)).int}"


def tracking_uid(series_instance_uid: str, model_name: str, finding_id: str) -> str:
    return derived_uid("tracking", series_instance_uid, model_name, finding_id)


def tracking_id(number: int) -> str:
    return f"finding #{number}"


def series_uid(source_series_uid: str, model_name: str, model_version: str, kind: str) -> str:
    """One series per (source series, model version, kind): rebuilt objects land in the same series."""
    return derived_uid("series", source_series_uid, model_name, model_version, kind)


def content_key(kind: str, payload: Any) -> str:
    """sha256 over what the object says (never UIDs or times), in canonical JSON."""
    text = json.dumps({"kind": kind, "content": payload}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
