"""The template's function roles, and what an AWS call needs from them.

Used two ways:
- by test_template.py, which holds each role to the SDK operations of the
  adapters its function links (an upper bound: nothing granted that no linked
  call needs);
- by the Rust handler tests, through this file as a program, which hold each
  role to the calls the function really made against the emulator (a lower
  bound: nothing called that the role does not grant):

      python infra/tests/roles.py FunctionLogicalId service:Action ...

  prints what is missing and exits 1, or exits 0. `service:Action` is the
  emulator's name of a request (tests/emulator: the SigV4 scope's service and
  the operation, or the HTTP method for REST services).
"""

import sys
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "template.yaml"

# SDK operation -> the IAM actions it needs, where they are not "service:Operation".
IAM_ACTIONS = {
    "lambda:Invoke": ["lambda:InvokeFunction"],
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:ListMultipartUploads": ["s3:ListBucketMultipartUploads"],
    "s3:GetBucketLifecycleConfiguration": ["s3:GetLifecycleConfiguration"],
    "s3:PutBucketLifecycleConfiguration": ["s3:PutLifecycleConfiguration"],
    "s3:DeleteBucketLifecycle": ["s3:PutLifecycleConfiguration"],
    "s3:CreateMultipartUpload": ["s3:PutObject"],
    "s3:UploadPart": ["s3:PutObject"],
    "s3:CompleteMultipartUpload": ["s3:PutObject"],
    "s3:DeleteObjects": ["s3:DeleteObject"],
    "s3:CopyObject": ["s3:GetObject", "s3:PutObject"],
    "s3:HeadObject": ["s3:GetObject"],
}

# Actions AWS checks on the caller besides the operation's own.
IMPLIED = {
    # A group made or changed with a launch template: the caller must be allowed
    # to run it, to pass its instance profile's role, and to tag the group.
    "autoscaling:CreateAutoScalingGroup": ["ec2:RunInstances", "iam:PassRole", "autoscaling:CreateOrUpdateTags"],
    "autoscaling:UpdateAutoScalingGroup": ["ec2:RunInstances", "iam:PassRole"],
    # Tags given at creation.
    "ec2:CreateLaunchTemplate": ["ec2:CreateTags", "iam:PassRole"],
    "ec2:CreateSecurityGroup": ["ec2:CreateTags"],
    "cloudwatch:PutMetricAlarm": ["cloudwatch:TagResource"],
}

# The SigV4 scope's service -> the IAM prefix, where they differ.
SCOPE_PREFIX = {"monitoring": "cloudwatch"}

# REST requests the emulator names by HTTP method: any one of these actions
# covers them (the DM's Lambda POSTs are invokes; its Route 53 GETs are lists,
# its POSTs changes and health checks).
REST_METHODS = {
    "lambda:POST": ["lambda:InvokeFunction"],
    "route53:GET": ["route53:ListResourceRecordSets", "route53:ListHealthChecks", "route53:ListHostedZonesByName"],
    "route53:POST": ["route53:ChangeResourceRecordSets", "route53:CreateHealthCheck"],
}


def load_template():
    template, errors = decode(str(TEMPLATE_PATH))
    assert not errors, errors
    return template


def branches(value):
    """The values a template value may take: both sides of every Fn::If,
    without AWS::NoValue."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        return branches(yes) + branches(no)
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def as_list(value):
    out = []
    for v in branches(value):
        for item in v if isinstance(v, list) else [v]:
            out.extend(branches(item))
    return out


def function_statements(template, name):
    out = []
    for policy in template["Resources"][name]["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"{name}: only inline statements, no managed or SAM policy templates: {policy!r}"
        )
        for st in policy["Statement"]:
            out.extend(branches(st))
    return out


def actions(statement):
    return as_list(statement["Action"])


def granted(template, name):
    """Every action a function's role allows (in any condition's branch)."""
    out = set()
    for st in function_statements(template, name):
        out.update(actions(st))
    return out


def needs(call):
    """What one emulator-named call needs: a list of alternatives, each a list
    of actions that must all be granted."""
    if call in REST_METHODS:
        return [[a] for a in REST_METHODS[call]]
    service, action = call.split(":", 1)
    op = f"{SCOPE_PREFIX.get(service, service)}:{action}"
    return [IAM_ACTIONS.get(op, [op])]


def missing(template, name, calls):
    have = granted(template, name)
    out = []
    for call in sorted(calls):
        alternatives = needs(call)
        if not any(all(a in have for a in alt) for alt in alternatives):
            out.append((call, alternatives))
    return out


def main(argv):
    if len(argv) < 2:
        print("usage: roles.py FunctionLogicalId service:Action ...", file=sys.stderr)
        return 2
    name, calls = argv[0], argv[1:]
    template = load_template()
    if name not in template["Resources"]:
        print(f"infra/template.yaml has no resource {name}", file=sys.stderr)
        return 2
    bad = [c for c in calls if ":" not in c]
    if bad:
        print(f"not service:Action: {bad}", file=sys.stderr)
        return 2
    gaps = missing(template, name, calls)
    for call, alternatives in gaps:
        wanted = " or ".join("+".join(alt) for alt in alternatives)
        print(f"{name} called {call}, which needs {wanted}: its role in infra/template.yaml does not grant it")
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
