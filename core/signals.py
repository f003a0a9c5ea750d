"""What `manage.py serve` tells the apps, so that it starts their work without importing them.

Sent in this order by one serving process, each with ``sender`` the serve command's class:

- ``warming_up``: the store is claimed and announced, the retriever warm; receivers start loading,
  in the background, what the first request would otherwise wait for (the offline model).
- ``serving``: just before the web server starts; receivers start the work that runs beside it
  (the embedded ingestion worker and what it does at start-up). Arguments: ``host``, ``port``,
  ``worker`` (False under ``--no-worker``: start no in-process worker) and ``write`` (writes one
  line to the command's stderr, for what the operator should read).
- ``serving_stopped``: the web server has stopped (Ctrl+C, or it could not start); receivers stop
  what they started on ``serving``.

An exception in a receiver stops `serve` as it would have in its own code.
"""

from django.dispatch import Signal

warming_up = Signal()
serving = Signal()
serving_stopped = Signal()
