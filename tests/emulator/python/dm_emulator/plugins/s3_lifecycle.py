"""Bucket lifecycle rules come back as they were put, and AWS's refusals.

moto 5.2.5 parses ``PutBucketLifecycleConfiguration`` into its own model and
answers ``GetBucketLifecycleConfiguration`` from it, losing what the model
lacks: a ``Filter`` with ``ObjectSizeGreaterThan`` / ``ObjectSizeLessThan``
comes back as an empty ``Filter`` (the rule now applies to every object), the
sizes in an ``And`` filter and ``NoncurrentVersionExpiration.NewerNoncurrentVersions``
vanish.  A client that rewrites the whole configuration to change its own
rules (S3 has no per-rule call) would then write other owners' rules back
widened.  moto also

* accepts a configuration without any rule (AWS: 400 ``MalformedXML``; the
  way to remove every rule is ``DeleteBucketLifecycle``), after which
  ``GetBucketLifecycleConfiguration`` says ``NoSuchLifecycleConfiguration``;
* accepts two rules with the same ``ID`` (AWS: 400 ``InvalidArgument``);
* deletes the bucket's rules when it refuses a configuration (e.g. a rule
  with both ``Prefix`` and ``Filter``: ``MalformedXML``); AWS keeps them.

We wrap ``S3Response._bucket_response_put`` for ``?lifecycle``: a body that
is not XML or has no ``<Rule>`` is 400 ``MalformedXML``, two rules with one
``ID`` are 400 ``InvalidArgument``; otherwise moto validates and stores the
rules as before (its other checks and errors stay; if it refuses, the rules
the bucket had are put back), and we keep the ``<Rule>`` elements as sent
(namespace and whitespace between elements dropped).  A
``GetBucketLifecycleConfiguration`` while moto still holds those rules (not
deleted or replaced since) answers them as they were sent, with
``x-amz-transition-default-minimum-object-size: all_storage_classes_128K``
as moto does; otherwise moto answers.  Checksum headers (``Content-MD5``,
``x-amz-checksum-crc32``, ``x-amz-checksum-crc64nvme``, ...) are neither
required nor checked, as in moto.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from typing import Any

_MARK = "_dm_s3_lifecycle"
_STASH = "_dm_lifecycle_rules"
_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _normalise(element: ET.Element) -> None:
    """Drops namespaces and whitespace-only text between elements, in place."""
    for node in element.iter():
        node.tag = _local(node.tag)
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None


def rules_as_sent(body: bytes) -> list[str]:
    """The ``<Rule>`` elements of a ``LifecycleConfiguration``, serialised.

    Raises ``ValueError("MalformedXML")`` or ``ValueError("DuplicateId")``."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise ValueError("MalformedXML") from err
    if _local(root.tag) != "LifecycleConfiguration":
        raise ValueError("MalformedXML")
    _normalise(root)
    rules = [child for child in root if child.tag == "Rule"]
    if not rules:
        raise ValueError("MalformedXML")
    ids = [(rule.findtext("ID") or "") for rule in rules]
    named = [i for i in ids if i]
    if len(named) != len(set(named)):
        raise ValueError("DuplicateId")
    return [ET.tostring(rule, encoding="unicode", short_empty_elements=False) for rule in rules]


def install() -> None:
    from moto.s3.exceptions import InvalidArgumentError, MalformedXML
    from moto.s3.responses import S3Response

    original_put = S3Response._bucket_response_put
    if getattr(original_put, _MARK, False):
        return
    original_get = S3Response.get_bucket_lifecycle

    @functools.wraps(original_put)
    def _bucket_response_put(self: Any, request: Any, bucket_name: str, querystring: dict[str, Any]) -> Any:
        if "lifecycle" not in querystring:
            return original_put(self, request, bucket_name, querystring)
        body = self.body if isinstance(self.body, bytes) else str(self.body or "").encode("utf-8")
        try:
            rules = rules_as_sent(body)
        except ValueError as err:
            if str(err) == "DuplicateId":
                raise InvalidArgumentError(
                    "Rule ID must be unique. Found same ID for more than one rule", "ID", ""
                ) from None
            raise MalformedXML() from None
        bucket = self.backend.get_bucket(bucket_name)
        previous = bucket.rules
        try:
            answer = original_put(self, request, bucket_name, querystring)
        except Exception:
            bucket.rules = previous  # moto empties them before it validates
            raise
        # moto replaces bucket.rules with a new list on every put and delete,
        # so the stash is current exactly while it holds this very list.
        setattr(bucket, _STASH, (bucket.rules, rules))
        return answer

    @functools.wraps(original_get)
    def get_bucket_lifecycle(self: Any) -> Any:
        bucket = self.backend.get_bucket(self.bucket_name)
        stash = getattr(bucket, _STASH, None)
        if not bucket.rules or stash is None or stash[0] is not bucket.rules:
            return original_get(self)
        self.data["Action"] = "GetBucketLifecycleConfiguration"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<LifecycleConfiguration xmlns="{_NAMESPACE}">{"".join(stash[1])}</LifecycleConfiguration>'
        )
        headers = {
            "Content-Type": "application/xml",
            "x-amz-transition-default-minimum-object-size": "all_storage_classes_128K",
        }
        return 200, headers, body

    setattr(_bucket_response_put, _MARK, True)
    S3Response._bucket_response_put = _bucket_response_put  # type: ignore[method-assign]
    S3Response.get_bucket_lifecycle = get_bucket_lifecycle  # type: ignore[method-assign]
