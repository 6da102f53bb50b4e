"""Safety: which targets a crawl may reach, secrets kept out of logs, trusted job directories.

``targets`` is the address policy, ``named`` what the user named (seeds), ``resolver`` the DNS
resolver that applies the policy at resolution time; the downloader middleware
``crawler.middlewares.targets.PrivateTargetMiddleware`` applies it to every request.
"""
