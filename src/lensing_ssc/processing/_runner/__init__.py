"""Private machinery of :mod:`lensing_ssc.processing.runner`.

- :mod:`.results`: the value objects a run returns (``MapResult``, ``TaskFailure``);
- :mod:`.keys`: stable item keys and function identities;
- :mod:`.journal`: the append-only, checksummed, group-committed completion journal;
- :mod:`.worker`: what runs inside workers (retries, timing, per-process set-up);
- :mod:`.executors`: adapters over thread, process and user-supplied executors;
- :mod:`.dask_adapter`: the Dask adapter (imported only when Dask is asked for);
- :mod:`.ledger`: the book-keeping of one run (results, journal, durable callbacks);
- :mod:`.engine`: the serial and the parallel scheduling loops.

Nothing here is public; import from :mod:`lensing_ssc.processing.runner`.
"""
