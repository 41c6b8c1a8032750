"""Core building blocks: exceptions (``base``), configuration (``config``) and crash-safe I/O (``io``)."""
