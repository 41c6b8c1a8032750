"""Private parts of :mod:`lensing_ssc.processing.managers.resource_manager`.

``usage`` holds the value objects and the limit arithmetic, ``limits`` finds the memory
limits that apply to the job (cgroups v1/v2, rlimits), ``sampling`` measures the job and
the machine, ``settings`` validates the manager's arguments, ``monitor`` is the periodic
thread, ``alerts`` the callback lists and ``report`` the text report. Nothing here is
public API: import from ``resource_manager`` instead.
"""
