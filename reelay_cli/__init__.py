"""``reelay``: the command-line client of the Reelay HTTP API.

It talks to the API over HTTP only and imports nothing from the domain core (``reelay/``), so it
can be installed and run anywhere a user has Python and the API's URL.
"""

__version__ = "0.1.0"
