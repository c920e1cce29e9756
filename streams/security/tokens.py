"""OIDC/JWT bearer tokens, verified with PyJWT against a JWKS URL or a static public key: signature,
issuer, audience, expiry, and the scopes StreamVision knows.

Example:
    >>> sorted(scopes_of({"scope": "openid sv:read sv:upload other"}, "scope", "sv:"))
    ['read', 'upload']
    >>> sorted(scopes_of({"scp": ["read", "admin"]}, "scp", ""))
    ['admin', 'read']
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jwt

from streams.security.policy import SCOPES, Principal
from streams.settings import Settings

JWKS_CACHE_S = 300  # keys are refetched after this, or at once for an unknown key id


class InvalidCredentials(Exception):
    """The credential was refused; ``reason`` is safe to show (it never contains the credential)."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason, self.kind = reason, kind


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def scopes_of(claims: dict[str, Any], claim: str, prefix: str) -> frozenset[str]:
    """StreamVision scopes named in ``claims[claim]`` (a space-separated string or a list)."""
    value = claims.get(claim) or ()
    names = value.split() if isinstance(value, str) else [str(v) for v in value]
    return frozenset(n[len(prefix) :] for n in names if n.startswith(prefix) and n[len(prefix) :] in SCOPES)


def _static_key(value: str) -> str:
    return value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()


class JwtVerifier:
    """Verifies bearer JWTs as the settings say (``jwt_*``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=JWKS_CACHE_S, timeout=5)
            if settings.jwt_jwks_url
            else None
        )
        self._key = _static_key(settings.jwt_public_key) if settings.jwt_public_key else None

    async def verify(self, token: str) -> Principal:
        """The identity ``token`` proves.

        Raises:
            InvalidCredentials: bad signature, expired, wrong issuer or audience, unknown key.
        """
        settings = self.settings
        try:
            if self._jwks is not None:  # urllib inside: keep it off the event loop
                key: Any = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            else:
                key = self._key
            claims = jwt.decode(
                token,
                key,
                algorithms=list(settings.jwt_algorithms),
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidCredentials("token expired", "expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidCredentials("token has the wrong audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidCredentials("token has the wrong issuer") from exc
        except jwt.PyJWKClientError as exc:
            raise InvalidCredentials("token signed by an unknown key") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidCredentials(f"invalid token ({type(exc).__name__})") from exc
        subject = str(claims["sub"])
        scopes = scopes_of(claims, settings.jwt_scope_claim, settings.jwt_scope_prefix)
        return Principal(id=f"jwt:{subject}", name=subject, scopes=scopes)
