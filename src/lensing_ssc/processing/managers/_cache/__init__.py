"""The private parts of :class:`~lensing_ssc.processing.managers.CacheManager`.

One module per concern: settings and argument checks (:mod:`._settings`), the value
objects of statistics (:mod:`._stats`), the O(1) LFU index (:mod:`._policies`), the
in-memory tier (:mod:`._memory`), canonical keys (:mod:`._keys`), value encoding and value
files (:mod:`._values`), the SQLite index of the disk tier (:mod:`._index`) and the locked,
fork-aware access to it (:mod:`._connection`), the disk tier itself (:mod:`._disk`), and the
``memoize`` decorator with its per-key locks and cross-process leases (:mod:`._memoize`).
Nothing here is public; the manager in ``cache_manager.py`` composes these pieces.
"""
