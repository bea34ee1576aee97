"""A bounded LRU of finished JSON answers, keyed by endpoint + canonical request, per loaded model.

Why: every answer is a pure function of (model artifact, request), and the expensive part of /rank is TreeSHAP for
each candidate (~3 ms per row on the current 500-tree model), so a repeated question should cost a dictionary
lookup, not a recomputation. The cache lives on the event-loop thread (async endpoints), so it needs no lock, and it
is dropped whenever a different predictor object is served. A miss is computed in the thread pool as before.
"""
from __future__ import annotations

from collections import OrderedDict


class AnswerCache:
    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 << 20):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._owner = None
        self.hits = 0
        self.misses = 0

    def get(self, owner, key: tuple) -> bytes | None:
        if owner is not self._owner:
            self.clear()
            self._owner = owner
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, owner, key: tuple, value: bytes) -> None:
        if owner is not self._owner or len(value) > self.max_bytes // 8:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._data[key] = value
        self._bytes += len(value)
        while self._data and (len(self._data) > self.max_entries or self._bytes > self.max_bytes):
            _, dropped = self._data.popitem(last=False)
            self._bytes -= len(dropped)

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)
