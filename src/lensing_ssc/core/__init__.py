"""Core building blocks shared by every area.

``base`` holds the exception tree, ``config`` the run configuration and ``io`` crash-safe I/O.
"""
