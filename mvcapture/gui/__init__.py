"""The PySide6 desktop app: views over the lower layers; workers in threads; no science here.

`state` and `source` are plain Python (tested without Qt); the other modules are widgets.
"""
