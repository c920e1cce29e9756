"""The web server's pages: health, metrics and the JSON API over the tables, uploads and results, the
drift views, the live stream and the dashboard (``static/``).
"""
