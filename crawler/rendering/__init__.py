"""JavaScript rendering with scrapy-playwright and Chromium: when, how fast, and how safely.

``crawler.middlewares.render.RenderMiddleware`` decides per request; this package holds what it
and the browser handler are built from: configuration, browser discovery, the auto-escalation
detector, the per-pattern learning memory, page settling and the recycling download handler.
"""
