"""The one-machine platform: ``python -m local`` runs all of Reelay in the foreground."""

import os as _os

# One process plays every Lambda here, so one service name; set before Powertools reads it at import.
_os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "reelay-local")
_os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Reelay")
