"""The Deployment Manager's AWS emulator: moto's server plus our plugins.

Run it with ``python -m dm_emulator --host 127.0.0.1 --port 0``.  It prints one
line ``DM_EMULATOR_READY http://127.0.0.1:<port>`` when it is listening.

Plugins live in ``dm_emulator.plugins``; every module there exposes
``install()``, which patches moto's backends or responses before the server
starts.  Fault injection and request counting are a WSGI middleware
(``dm_emulator.faults``) with control routes under ``/_dm/``.
"""
