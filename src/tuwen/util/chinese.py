"""Chinese text: where its runs are, and jieba (loaded once per process) to cut them into words.

Shared by the search index (``tuwen.search.tokens``) and the trainable text encoders (``tuwen.predict.endtoend``);
kept apart from both so importing it pulls in neither LanceDB nor torch.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any

CJK_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")
_lock = threading.Lock()


@functools.cache
def jieba() -> Any:
    """The jieba module with its dictionary loaded (~1-4 s once per process; only paid when Chinese appears)."""
    import jieba as module

    module.setLogLevel(logging.WARNING)
    with _lock:
        module.initialize()
    return module
