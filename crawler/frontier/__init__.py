"""The durable frontier: a crawl's requests as rows of the SQLite store, leased by its processes.

``scheduler.FrontierScheduler`` is the Scrapy ``SCHEDULER``; ``jobs`` chooses the job a crawl
works on (a new one, or the unfinished one it resumes); ``codec`` turns requests into JSON and
back; ``startguard.FrontierStartMiddleware`` keeps ``start()`` from seeding a job twice.
"""
