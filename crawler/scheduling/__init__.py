"""``scrapy schedule``: jobs from a TOML file, run as ``scrapy crawl`` processes on time.

``schedulefile`` reads and checks the file, ``job`` holds one job (its trigger and command line),
``due`` decides what ``--once`` runs, ``runner`` runs one crawl under the job's ``lock`` and
records it in ``state``, ``daemon`` is the foreground scheduler (APScheduler), ``once`` the
``--once`` mode, ``stopping`` turns SIGTERM/SIGINT into a clean stop; ``egg`` builds the Scrapyd
egg.
"""
