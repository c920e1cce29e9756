"""Who may call the web server, and how often: identities (API keys in Redis, JWTs, the static token),
the access policy of every route, and the upload rate limits (README, "Security").

Nothing here knows about aiohttp or Faust: ``streams.web.security`` applies it to requests.
"""
