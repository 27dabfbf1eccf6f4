"""An access key id of exactly 12 digits selects that account id.

moto resolves the account of a request (``BaseResponse.get_current_account``)
as: env ``MOTO_ACCOUNT_ID``, else the ``x-moto-account-id`` header, else
``moto.iam.models.get_account_id_from(access key)`` (keys created through
moto's IAM), else 123456789012.

Two things stand in the way of using the access key id as the account:
``get_account_id_from`` only knows IAM-issued keys, and moto's access key
regex (``BaseResponse.access_key_regex``) only recognises 20-character keys,
so a 12-digit key is not even extracted (it becomes "AKIAEXAMPLE").  We
therefore hook ``get_current_account`` itself, between the header and the IAM
lookup: a 12-digit access key id in the SigV4 credential scope (Authorization
header, or ``X-Amz-Credential`` of a presigned URL) is the account id.  The
env var and the header keep their priority; any other key keeps moto's
behaviour.
"""

import functools
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from moto.core.responses import BaseResponse

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")
_MARK = "_dm_accounts"


def access_key_from_credential(authorization: str | None, query_string: str | None) -> str | None:
    """The access key id of a SigV4 request (header or presigned URL), if any."""
    if authorization:
        match = _CREDENTIAL.search(authorization)
        if match:
            return match.group(1)
    if query_string and "X-Amz-Credential" in query_string:
        values = parse_qs(query_string).get("X-Amz-Credential")
        if values:
            return values[0].split("/", 1)[0]
    return None


def account_from_access_key(access_key: str | None) -> str | None:
    """The account a 12-digit access key id selects, or None."""
    if access_key and _TWELVE_DIGITS.fullmatch(access_key):
        return access_key
    return None


def resolve_account(environ: Mapping[str, Any]) -> str:
    """The account moto (with this plugin installed) attributes a WSGI request to."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    header = environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    if header:
        return str(header)
    authorization = environ.get("HTTP_AUTHORIZATION")
    key = access_key_from_credential(authorization, environ.get("QUERY_STRING"))
    account = account_from_access_key(key)
    if account is not None:
        return account
    # Same as moto: only 20-character keys are recognised, else AKIAEXAMPLE.
    from moto.iam.models import get_account_id_from

    moto_key = "AKIAEXAMPLE"
    if authorization:
        match = BaseResponse.access_key_regex.search(authorization)
        if match:
            moto_key = match.group(1)
    return get_account_id_from(moto_key)


def install() -> None:
    original = BaseResponse.get_current_account
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def get_current_account(self: BaseResponse) -> str:
        if "MOTO_ACCOUNT_ID" in os.environ or "x-moto-account-id" in self.headers:
            return original(self)
        key = access_key_from_credential(
            self.headers.get("Authorization"), self.parsed_url.query
        )
        account = account_from_access_key(key)
        if account is not None:
            return account
        return original(self)

    setattr(get_current_account, _MARK, True)
    BaseResponse.get_current_account = get_current_account  # type: ignore[method-assign]
