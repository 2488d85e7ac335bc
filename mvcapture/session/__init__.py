"""Session folders (media, timestamps, sync, detections, 3D, metrics) and the SQLite catalog over them."""

from mvcapture.session.catalog import Catalog
from mvcapture.session.store import STAGES, ImportCancelled, Session, View, read_timestamps, sessions_root

__all__ = ["Catalog", "ImportCancelled", "STAGES", "Session", "View", "read_timestamps", "sessions_root"]
