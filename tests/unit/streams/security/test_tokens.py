"""JWT verification with a static public key: signature, issuer, audience, expiry and scopes."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streams.security.tokens import InvalidCredentials, JwtVerifier
from streams.settings import Settings

ISSUER, AUDIENCE = "https://idp.test", "streamvision-api"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa_key()


def token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256")


@pytest.fixture
def verifier(key: rsa.RSAPrivateKey, tmp_path) -> JwtVerifier:
    pem = tmp_path / "idp.pem"
    pem.write_text(public_pem(key))
    settings = Settings(
        jwt_public_key=str(pem), jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_scope_prefix="sv:"
    )
    return JwtVerifier(settings)


async def test_a_good_token_gives_its_subject_and_scopes(key, verifier) -> None:
    principal = await verifier.verify(token(key, scope="openid sv:read sv:upload"))
    assert principal.id == "jwt:alice" and principal.scopes == {"read", "upload"}


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 120}, "token expired"),
        ({"aud": "someone-else"}, "token has the wrong audience"),
        ({"iss": "https://evil.test"}, "token has the wrong issuer"),
        ({"sub": None}, "invalid token (MissingRequiredClaimError)"),
        ({"exp": None}, "invalid token (MissingRequiredClaimError)"),
    ],
)
async def test_bad_claims_are_refused(key, verifier, claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidCredentials) as refused:
        await verifier.verify(token(key, scope="sv:read", **claims))
    assert refused.value.reason == reason


async def test_a_token_of_another_key_or_algorithm_is_refused(key, verifier) -> None:
    with pytest.raises(InvalidCredentials, match="Signature"):
        await verifier.verify(token(rsa_key(), scope="sv:read"))
    forged = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 2**31}, "s" * 32, algorithm="HS256"
    )
    with pytest.raises(InvalidCredentials):
        await verifier.verify(forged)


def test_jwt_settings_need_an_issuer_and_an_audience() -> None:
    with pytest.raises(ValueError, match="jwt_issuer and jwt_audience"):
        Settings(jwt_jwks_url="http://idp/jwks", jwt_issuer=ISSUER)
