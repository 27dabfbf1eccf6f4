"""Checks of infra/template.yaml against the code it deploys.

The template is read with cfn-lint's decoder (it understands !Ref, !Sub and
the other short forms). The code is read where it states the facts: Cargo.toml
files (binaries and the AWS features each function links), the SDK adapters in
shared/src/cloud/aws/ (the operations they call, named by botocore's service
models), shared/src/domain/security_group.rs (the OkeraOdasServices rules),
shared/src/metrics.rs (metric names), shared/src/workflows/retention.rs (the
staging bucket's lifecycle rules) and events/ (one sample per trigger).

Run by tests/run; by hand: target/infra-venv/bin/python -m pytest infra/tests
"""

import json
import re
import tomllib
from pathlib import Path

import botocore
import botocore.session
import pytest

from roles import IAM_ACTIONS, IMPLIED, ROOT, TEMPLATE_PATH, actions, as_list, branches, function_statements, load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def of_type(kind):
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


FUNCTIONS = of_type("AWS::Serverless::Function")


def statements_of_function(name):
    return function_statements(TEMPLATE, name)


def statements_of_role(name):
    out = []
    for policy in RESOURCES[name]["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            out.extend(branches(st))
    return out


def every_policy():
    """(owner, statement) for every function and every IAM role of the stack."""
    for name in FUNCTIONS:
        for st in statements_of_function(name):
            yield name, st
    for name in of_type("AWS::IAM::Role"):
        for st in statements_of_role(name):
            yield name, st


# --- functions and binaries --------------------------------------------------

def workspace_function_binaries():
    """binary name -> crate directory, for every crate under functions/."""
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    out = {}
    for member in workspace["workspace"]["members"]:
        if not member.startswith("functions/"):
            continue
        manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        bins = manifest.get("bin") or [{"name": manifest["package"]["name"]}]
        for b in bins:
            out[b["name"]] = member
    return out


BINARIES = workspace_function_binaries()


def binary_of(function):
    return FUNCTIONS[function]["Metadata"]["BuildProperties"]["Binary"]


def test_every_function_is_a_workspace_binary_and_every_binary_a_function():
    in_template = sorted(binary_of(f) for f in FUNCTIONS)
    assert len(in_template) == len(set(in_template)), f"a binary is deployed twice: {in_template}"
    assert in_template == sorted(BINARIES), (
        "the template's functions and the binaries of functions/* differ: "
        f"template {in_template}, workspace {sorted(BINARIES)}"
    )


def test_every_function_is_built_by_cargo_lambda_for_arm64_al2023():
    glob = TEMPLATE["Globals"]["Function"]
    assert glob["Runtime"] == "provided.al2023"
    assert glob["Architectures"] == ["arm64"]
    assert glob["Handler"] == "bootstrap"
    for name, f in FUNCTIONS.items():
        assert f["Metadata"]["BuildMethod"] == "rust-cargolambda", name
        props = f["Properties"]
        for key in ("Runtime", "Architectures", "Handler"):
            assert key not in props, f"{name} overrides {key} of Globals"
        # The workspace root: cargo-lambda builds the named binary from there.
        assert props["CodeUri"] == "..", name


def test_functions_run_in_the_vpc():
    vpc = TEMPLATE["Globals"]["Function"]["VpcConfig"]
    assert vpc["SubnetIds"] == {"Ref": "SubnetIds"}
    assert {"Ref": "FunctionSecurityGroupId"} in vpc["SecurityGroupIds"]
    for name, f in FUNCTIONS.items():
        assert "VpcConfig" not in f["Properties"], f"{name} overrides the VPC settings"


# --- triggers ----------------------------------------------------------------

# Every trigger of every function, and its sample in events/. A new trigger fails
# test_every_trigger_has_a_sample until its sample is written and listed here.
SAMPLES = {
    ("ApiFunction", "Api"): [
        "apigw-http-status.json",
        "apigw-http-list-clusters.json",
        "apigw-http-create-cluster.json",
        "apigw-http-create-cluster-base64.json",
    ],
    ("ReconcilerFunction", "Schedule"): ["schedule-reconcile.json"],
    ("LifecycleFunction", "LifecycleActions"): ["lifecycle-launch.json", "lifecycle-terminate.json"],
    ("HealthSweepFunction", "Schedule"): ["schedule-health-sweep.json"],
    ("LogRotationFunction", "Schedule"): ["schedule-log-rotation.json"],
    ("RunbooksFunction", "Schedule"): ["schedule-runbooks.json"],
    ("FailoverFunction", "Schedule"): ["schedule-failover.json"],
    ("FailoverFunction", "RegionHealth"): ["alarm-region-health.json"],
    ("FailoverFunction", "MonthlyDrill"): ["schedule-drill.json"],
}


def events():
    for name, f in FUNCTIONS.items():
        for event, spec in f["Properties"].get("Events", {}).items():
            yield name, event, spec


def sub_text(value):
    """The text of a plain string or an Fn::Sub."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    raise AssertionError(f"not a string: {value!r}")


def value_matches(pattern_value, actual):
    """One EventBridge pattern value against an event's value: exact, or
    {"prefix": ...}. ${...} in an Fn::Sub stands for any text."""
    if isinstance(pattern_value, dict) and "prefix" in pattern_value:
        return isinstance(actual, str) and actual.startswith(pattern_value["prefix"])
    text = sub_text(pattern_value)
    regex = "".join(".+" if part.startswith("${") else re.escape(part) for part in re.split(r"(\$\{[^}]+\})", text))
    return isinstance(actual, str) and re.fullmatch(regex, actual) is not None


def pattern_matches(pattern, event):
    for key, want in pattern.items():
        if key not in event:
            return False
        if isinstance(want, dict):
            if not isinstance(event[key], dict) or not pattern_matches(want, event[key]):
                return False
        elif not any(value_matches(w, event[key]) for w in want):
            return False
    return True


def sample(name):
    path = ROOT / "events" / name
    assert path.is_file(), f"events/{name} is missing"
    return json.loads(path.read_text())


def test_every_trigger_has_a_sample():
    triggers = {(f, e) for f, e, _ in events()}
    assert triggers == set(SAMPLES), (
        f"triggers without a sample: {sorted(triggers - set(SAMPLES))}; "
        f"samples of triggers that are gone: {sorted(set(SAMPLES) - triggers)}"
    )
    for function, event, spec in events():
        props = spec["Properties"]
        for name in SAMPLES[(function, event)]:
            s = sample(name)
            if spec["Type"] == "EventBridgeRule":
                assert pattern_matches(props["Pattern"], s), f"events/{name} does not match {function}.{event}"
            elif spec["Type"] == "ScheduleV2":
                raw = sub_text(props["Input"])
                given = json.loads(re.sub(r"\$\{[^}]+\}", "us-west-2", raw))
                for key, value in given.items():
                    assert key in s, f"events/{name} lacks {key!r} of {function}.{event}'s input"
                    if isinstance(value, dict) and value:
                        assert set(value) <= set(s[key]), f"events/{name}: {key} differs from the schedule's input"
                    elif not isinstance(value, dict):
                        assert s[key] == value, f"events/{name}: {key} differs from the schedule's input"
            elif spec["Type"] == "HttpApi":
                assert s["version"] == "2.0", name
                assert s["rawPath"].startswith("/v1/"), name
            else:
                pytest.fail(f"{function}.{event}: no check for trigger type {spec['Type']}")


def test_schedules_drive_every_periodic_function():
    scheduled = {f for f, _, spec in events() if spec["Type"] == "ScheduleV2"}
    assert scheduled >= {
        "ReconcilerFunction",
        "HealthSweepFunction",
        "LogRotationFunction",
        "RunbooksFunction",
        "FailoverFunction",
    }
    drill = FUNCTIONS["FailoverFunction"]["Properties"]["Events"]["MonthlyDrill"]["Properties"]
    assert '"drill"' in sub_text(drill["Input"])


def test_lifecycle_and_alarm_rules_feed_their_functions():
    lifecycle = FUNCTIONS["LifecycleFunction"]["Properties"]["Events"]["LifecycleActions"]
    assert lifecycle["Type"] == "EventBridgeRule"
    assert lifecycle["Properties"]["Pattern"]["source"] == ["aws.autoscaling"]
    alarm = FUNCTIONS["FailoverFunction"]["Properties"]["Events"]["RegionHealth"]
    assert alarm["Type"] == "EventBridgeRule"
    assert alarm["Properties"]["Pattern"]["detail-type"] == ["CloudWatch Alarm State Change"]
    # The rule listens for the alarm the stack makes, and the function knows it.
    alarm_name = sub_text(RESOURCES["RegionHealthAlarm"]["Properties"]["AlarmName"])
    assert [sub_text(v) for v in alarm["Properties"]["Pattern"]["detail"]["alarmName"]] == [alarm_name]
    env = FUNCTIONS["FailoverFunction"]["Properties"]["Environment"]["Variables"]
    assert sub_text(env["OKERA_REGION_HEALTH_ALARMS"]).startswith(alarm_name + "=")


def test_failed_events_are_kept():
    queue = {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    for function, event, spec in events():
        if spec["Type"] in ("EventBridgeRule", "ScheduleV2"):
            assert spec["Properties"].get("DeadLetterConfig") == {"Arn": queue}, (
                f"{function}.{event}: no dead-letter queue"
            )
    for name, f in FUNCTIONS.items():
        if name == "ApiFunction":
            continue  # invoked synchronously by API Gateway
        config = f["Properties"].get("EventInvokeConfig", {})
        on_failure = config.get("DestinationConfig", {}).get("OnFailure")
        assert on_failure == {"Type": "SQS", "Destination": queue}, f"{name}: no on-failure destination"
    policy = RESOURCES["FailedEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(st["Principal"] == {"Service": "events.amazonaws.com"} for st in policy)
    alarm = RESOURCES["FailedEventsAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["FailedEventsQueue", "QueueName"]}


def test_failover_has_reserved_concurrency():
    assert FUNCTIONS["FailoverFunction"]["Properties"]["ReservedConcurrentExecutions"] >= 1


# --- the API -----------------------------------------------------------------

def test_every_api_route_needs_iam_auth():
    apis = of_type("AWS::Serverless::HttpApi")
    assert list(apis) == ["HttpApi"], "one HTTP API"
    assert not of_type("AWS::Serverless::Api"), "no REST API besides the HTTP API"
    auth = apis["HttpApi"]["Properties"]["Auth"]
    assert auth["EnableIamAuthorizer"] is True
    assert auth["DefaultAuthorizer"] == "AWS_IAM"
    routes = [(f, e, spec) for f, e, spec in events() if spec["Type"] in ("HttpApi", "Api")]
    assert routes
    for function, event, spec in routes:
        props = spec["Properties"]
        assert props.get("ApiId") == {"Ref": "HttpApi"}, f"{function}.{event} is on another API"
        override = props.get("Auth", {}).get("Authorizer", "AWS_IAM")
        assert override == "AWS_IAM", f"{function}.{event} overrides the IAM authorizer with {override}"
    for name, f in FUNCTIONS.items():
        assert "FunctionUrlConfig" not in f["Properties"], f"{name} has a function URL, outside IAM auth"
    env = FUNCTIONS["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["OKERA_AUTH"] == "iam"
    assert env["OKERA_IAM_ROLES"] == {"Ref": "IamRoles"}


# --- least privilege ---------------------------------------------------------

def test_no_wildcard_actions_and_no_managed_policies():
    for owner, st in every_policy():
        assert st["Effect"] == "Allow", f"{owner}: {st.get('Sid')}"
        assert "NotAction" not in st and "NotResource" not in st, f"{owner}: {st.get('Sid')}"
        for action in actions(st):
            assert isinstance(action, str) and "*" not in action, f"{owner}: action {action!r}"
    for name, f in FUNCTIONS.items():
        for policy in f["Properties"].get("Policies", []):
            assert not isinstance(policy, str), f"{name}: managed policy {policy}"
        for arn in f["Properties"].get("ManagedPolicyArns", []) or []:
            pytest.fail(f"{name}: managed policy {arn}")
    for name, role in of_type("AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), name
    text = TEMPLATE_PATH.read_text()
    assert "FullAccess" not in text


def test_each_function_has_its_own_role():
    # No `Role:` property: SAM then makes one role per function from its Policies.
    for name, f in FUNCTIONS.items():
        assert "Role" not in f["Properties"], f"{name} shares a role; each function has its own"


READ_ONLY = re.compile(r"^(Describe|Get|List)")

# Mutations that cannot carry the DM's tag, with why; nothing else goes
# without a LaunchedBy condition.
UNTAGGED_MUTATIONS = {
    "GroupsLaunchIntoNetworksAndImages": (
        "RunInstances also authorises the subnet, security group and image an "
        "instance uses; those are not the DM's and carry no tag of its own"
    ),
}


def tag_condition(st):
    cond = st.get("Condition", {}).get("StringEquals", {})
    return cond.get("aws:ResourceTag/LaunchedBy") == "Okera" or cond.get("aws:RequestTag/LaunchedBy") == "Okera"


def test_ec2_and_autoscaling_mutations_are_limited_to_okera_resources():
    for owner, st in every_policy():
        mutating = [
            a for a in actions(st)
            if a.split(":")[0] in ("ec2", "autoscaling") and not READ_ONLY.match(a.split(":")[1])
        ]
        if not mutating:
            continue
        if st.get("Sid") in UNTAGGED_MUTATIONS:
            assert mutating == ["ec2:RunInstances"], st["Sid"]
            for resource in as_list(st["Resource"]):
                assert re.search(r":(subnet|security-group|image)/\*$", sub_text(resource)), resource
            continue
        assert tag_condition(st), f"{owner}: {mutating} without a LaunchedBy=Okera condition ({st.get('Sid')})"


FEATURE_SERVICES = {
    "aws-ec2": "ec2",
    "aws-autoscaling": "autoscaling",
    "aws-s3": "s3",
    "aws-lambda": "lambda",
    "aws-cloudwatch": "cloudwatch",
    "aws-route53": "route53",
    "aws-dynamodb": "dynamodb",
    "aws-rds": "rds",
}

def sdk_operations(service):
    """The operations the adapter of a service calls: every `.op_name(` in its
    source that is an operation of the service's API model."""
    model = botocore.session.get_session().get_service_model(service)
    by_method = {botocore.xform_name(op): op for op in model.operation_names}
    source = (ROOT / "shared" / "src" / "cloud" / "aws" / f"{service}.rs").read_text()
    return {f"{service}:{by_method[m]}" for m in re.findall(r"\.([a-z0-9_]+)\(", source) if m in by_method}


def linked_services(function):
    crate = BINARIES[binary_of(function)]
    manifest = tomllib.loads((ROOT / crate / "Cargo.toml").read_text())
    features = manifest["dependencies"]["shared"].get("features", [])
    return {FEATURE_SERVICES[f] for f in features if f in FEATURE_SERVICES}


def allowed_actions(function):
    out = set()
    for service in linked_services(function):
        for op in sdk_operations(service):
            needed = IAM_ACTIONS.get(op, [op])
            out.update(needed)
            for action in needed:
                out.update(IMPLIED.get(action, []))
    return out


def test_adapters_call_operations_of_their_services():
    # A guard for the next test: the source scan finds the calls it should.
    assert "dynamodb:PutItem" in sdk_operations("dynamodb")
    assert "ec2:DescribeInstances" in sdk_operations("ec2")
    assert "autoscaling:CompleteLifecycleAction" in sdk_operations("autoscaling")
    assert "lambda:Invoke" in sdk_operations("lambda")
    assert "rds:FailoverGlobalCluster" in sdk_operations("rds")


def test_each_role_grants_only_what_its_function_calls():
    for name in FUNCTIONS:
        granted = set()
        for st in statements_of_function(name):
            granted.update(actions(st))
        allowed = allowed_actions(name)
        extra = sorted(granted - allowed)
        assert not extra, (
            f"{name} ({binary_of(name)}) is granted {extra}, which no SDK call of the "
            f"services it links ({sorted(linked_services(name))}) needs"
        )
        # And it links no SDK it has no use for.
        for service in linked_services(name):
            assert any(a.startswith(service + ":") for a in granted), (
                f"{name} links the {service} SDK but may call none of it"
            )


def test_nodes_role_is_passed_only_by_the_reconciler():
    for owner, st in every_policy():
        if "iam:PassRole" in actions(st):
            assert owner == "ReconcilerFunction", owner
            assert st["Resource"] == {"Ref": "NodeRoleArn"}


# --- resources ---------------------------------------------------------------

def rust_consts(path, pattern):
    return dict(re.findall(pattern, (ROOT / path).read_text()))


def test_staging_bucket_is_private_encrypted_and_expires_what_the_dm_expires():
    props = RESOURCES["StagingBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"][k] is True for k in (
        "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    retention = rust_consts("shared/src/workflows/retention.rs", r'pub const (\w+): &str = "([^"]*)";')
    archive = rust_consts("shared/src/workflows/archive.rs", r'pub const (\w+): &str = "([^"]*)";')
    staging = "staging/"  # OKERA_S3_STAGING_DIR is s3://<bucket>/staging
    expected = {
        retention["LOGS_RULE"]: (staging + retention["LOGS_PREFIX"], "LogRetentionDays"),
        retention["DIAGNOSTICS_RULE"]: (staging + retention["DIAGNOSTICS_PREFIX"], "DiagnosticsRetentionDays"),
        retention["HISTORY_RULE"]: (staging + archive["HISTORY_PREFIX"], "HistoryArchiveRetentionDays"),
    }
    assert set(rules) == set(expected)
    for rule_id, (prefix, days) in expected.items():
        r = rules[rule_id]
        assert r["Status"] == "Enabled" and r["Prefix"] == prefix, rule_id
        assert r["ExpirationInDays"] == {"Ref": days}, rule_id
        assert r["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}, rule_id
        assert r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1, rule_id
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert sub_text(env["OKERA_S3_STAGING_DIR"]) == "s3://${StagingBucket}/" + staging.rstrip("/")


def code_security_group_rules():
    source = (ROOT / "shared/src/domain/security_group.rs").read_text()
    table = source.split("pub const RULES: &[Rule] = &[", 1)[1].split("];", 1)[0]
    rows = re.findall(r'rule\((\d+), Source::(\w+), "([^"]*)"\)', table)
    # Every row of the table was read (none written another way).
    assert len(rows) == table.count("rule("), "a RULES row the test cannot read"
    name = re.search(r'pub const GROUP_NAME: &str = "([^"]*)";', source).group(1)
    return name, sorted((int(p), s, d) for p, s, d in rows)


def template_security_group_rules():
    group = RESOURCES["ServicesSecurityGroup"]["Properties"]
    sources = {"AdminCidr": "AdminCidr", "ServicesCidr": "VpcCidr"}
    rows = []
    for r in group["SecurityGroupIngress"]:
        assert r["IpProtocol"] == "tcp" and r["FromPort"] == r["ToPort"], r
        rows.append((r["FromPort"], sources[r["CidrIp"]["Ref"]], r["Description"]))
    for name, ingress in of_type("AWS::EC2::SecurityGroupIngress").items():
        p = ingress["Properties"]
        if p["GroupId"] != {"Ref": "ServicesSecurityGroup"}:
            continue
        assert p["SourceSecurityGroupId"] == {"Ref": "ServicesSecurityGroup"}, name
        assert p["IpProtocol"] == "tcp" and p["FromPort"] == p["ToPort"], name
        assert ingress.get("Condition") == RESOURCES["ServicesSecurityGroup"]["Condition"], name
        rows.append((p["FromPort"], "SelfGroup", p["Description"]))
    return group["GroupName"], sorted(rows)


def test_security_group_rules_equal_the_table_in_the_code():
    assert template_security_group_rules() == code_security_group_rules()


def test_dashboard_shows_metrics_the_code_writes():
    body = sub_text(RESOURCES["Dashboard"]["Properties"]["DashboardBody"])
    # Fn::Sub leaves ${...} to CloudFormation; the rest must be JSON.
    doc = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    assert doc["widgets"]
    published = set(rust_consts("shared/src/metrics.rs", r'pub const (\w+): &str = "([^"]*)";').values())
    shown = set(re.findall(r'\{Okera/DM,Region\} MetricName=\\?"(\w+)\\?"', body))
    assert shown, "no DM metric on the dashboard"
    assert shown <= published, f"the dashboard shows metrics nothing writes: {sorted(shown - published)}"
    # Sweep results, clusters ready per region, failover runs.
    assert {"ClustersReady", "ProbeFailures", "Repairs", "FailoverSucceeded", "FailoverFailed"} <= shown


def test_alarms_watch_metrics_the_code_writes():
    published = set(rust_consts("shared/src/metrics.rs", r'pub const (\w+): &str = "([^"]*)";').values())
    for name in ("ServingAlarm", "RegionHealthAlarm"):
        props = RESOURCES[name]["Properties"]
        assert props["Namespace"] == "Okera/DM"
        assert props["MetricName"] in published, name


def test_single_region_form_leaves_out_the_region_pieces():
    for name in ("ServingAlarm", "RegionHealthAlarm", "LifecycleForwardRole", "LifecycleForwardRule", "FailoverFunction"):
        assert RESOURCES[name].get("Condition") == "HasPeer", name
    assert RESOURCES["FenceTable"]["Condition"] == "MakesFenceTable"
    assert TEMPLATE["Parameters"]["PeerRegion"]["Default"] == ""


# --- roles.py as the handler tests run it -----------------------------------

def test_roles_program_names_what_a_role_lacks(capsys):
    import roles

    assert roles.main(["ReconcilerFunction", "ec2:DescribeInstances", "autoscaling:CreateAutoScalingGroup"]) == 0
    assert roles.main(["HealthSweepFunction", "ec2:TerminateInstances"]) == 1
    out = capsys.readouterr().out
    assert "HealthSweepFunction called ec2:TerminateInstances" in out and "ec2:TerminateInstances" in out
    # The emulator's names: the SigV4 scope's service, REST methods.
    assert roles.main(["FailoverFunction", "monitoring:PutMetricData", "lambda:POST", "route53:GET"]) == 0
    assert roles.main(["HealthSweepFunction", "lambda:POST"]) == 1
    # S3 operations map to their IAM actions.
    assert roles.main(["LogRotationFunction", "s3:ListObjectsV2", "s3:UploadPart", "s3:PutBucketLifecycleConfiguration"]) == 0


def test_roles_program_refuses_bad_input(capsys):
    import roles

    assert roles.main([]) == 2
    assert roles.main(["NoSuchFunction", "ec2:DescribeInstances"]) == 2
    assert "no resource NoSuchFunction" in capsys.readouterr().err
    assert roles.main(["ReconcilerFunction", "DescribeInstances"]) == 2
    assert "not service:Action" in capsys.readouterr().err
