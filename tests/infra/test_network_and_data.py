"""Network and data stacks: endpoints, flow logs, the pinned MySQL and its deploy-time migration."""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template

from infra.config import ReelayConfig
from infra.constructs.database import CatalogueDatabase, migrations_hash
from tests.infra.conftest import props


def _service_names(template) -> list[str]:
    return [
        json.dumps(props(r)["ServiceName"]) for r in template.find_resources("AWS::EC2::VPCEndpoint").values()
    ]


def test_vpc_has_private_and_isolated_subnets_one_nat_and_flow_logs(synthesized, stacks, config):
    # Given the network stack
    template = synthesized.template(stacks.network)
    # Then the VPC spans two AZs with public, private (egress) and isolated subnets
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": config.vpc_cidr})
    template.resource_count_is("AWS::EC2::Subnet", 3 * config.max_azs)
    template.resource_count_is("AWS::EC2::NatGateway", config.nat_gateways)
    # And every flow is logged
    template.has_resource_properties(
        "AWS::EC2::FlowLog", {"TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}
    )


def test_vpc_endpoints_keep_aws_traffic_off_the_nat(synthesized, stacks):
    # Given the network stack
    template = synthesized.template(stacks.network)
    names = _service_names(template)
    # Then S3 is a gateway endpoint
    template.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})
    assert any(".s3" in n for n in names)
    # And the chatty services are interface endpoints with private DNS
    for service in ("secretsmanager", "sqs", "ecr.api", "ecr.dkr", "logs", "sts"):
        assert any(f".{service}" in n for n in names), service
    interface = [
        props(r)
        for r in template.find_resources("AWS::EC2::VPCEndpoint").values()
        if props(r).get("VpcEndpointType") == "Interface"
    ]
    assert len(interface) == 6
    assert all(p["PrivateDnsEnabled"] is True for p in interface)


def test_mysql_is_pinned_encrypted_backed_up_and_protected(synthesized, stacks, config):
    # Given the data stack
    template = synthesized.template(stacks.data)
    # Then the instance is MySQL 8.0.39, encrypted, retained for 7+ days of backups, deletion-protected
    template.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "mysql",
            "EngineVersion": "8.0.39",
            "StorageEncrypted": True,
            "DeletionProtection": True,
            "BackupRetentionPeriod": config.db_backup_retention_days,
            "MultiAZ": config.db_multi_az,
            "PubliclyAccessible": False,
            "EnableIAMDatabaseAuthentication": True,
            "DBName": config.db_name,
        },
    )
    assert config.db_backup_retention_days >= 7
    # And TLS enforcement follows the config (off until the catalogue connects with ssl=)
    expected = "ON" if config.db_require_tls else "OFF"
    template.has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Parameters": {"require_secure_transport": expected}}
    )


def test_mysql_lives_in_isolated_subnets(synthesized, stacks):
    # Given the data stack's subnet group
    template = synthesized.template(stacks.data)
    groups = template.find_resources("AWS::RDS::DBSubnetGroup")
    assert len(groups) == 1
    subnet_refs = json.dumps(props(next(iter(groups.values())))["SubnetIds"])
    # Then its subnets are the isolated ones
    assert "isolated" in subnet_refs.lower()
    assert "private" not in subnet_refs.lower().replace("privateisolated", "")


def _logical_id(stack: cdk.Stack, construct) -> str:
    return stack.get_logical_id(construct.node.default_child)


def test_master_and_app_secrets_both_rotate(synthesized, stacks):
    # Given the data stack
    template = synthesized.template(stacks.data)
    database = stacks.data.database
    app_secret = _logical_id(stacks.data, database.app_secret)
    master_secret = _logical_id(stacks.data, database.master_secret)
    # Then there are two generated secrets: the master's and the application user's
    template.resource_count_is("AWS::SecretsManager::Secret", 2)
    templates = [
        json.dumps(props(r)["GenerateSecretString"]["SecretStringTemplate"])
        for r in template.find_resources("AWS::SecretsManager::Secret").values()
    ]
    assert any("reelay_admin" in t for t in templates)
    # And the app secret names the application user, and the master secret rotation changes it with
    (app_template,) = [t for t in templates if "reelay_app" in t]
    assert "masterarn" in app_template and master_secret in app_template
    # And each attached secret rotates every 30 days: the master alone, the app user by alternating users
    schedules = {
        props(r)["SecretId"]["Ref"]: r
        for r in template.find_resources("AWS::SecretsManager::RotationSchedule").values()
    }
    assert set(schedules) == {master_secret, app_secret}
    assert all(
        props(r)["RotationRules"] == {"ScheduleExpression": "rate(30 days)"} for r in schedules.values()
    )
    mappings = template.to_json()["Mappings"]
    serverless_apps = template.find_resources("AWS::Serverless::Application")
    for secret, kind in ((master_secret, "SingleUser"), (app_secret, "MultiUser")):
        app = props(schedules[secret])["RotationLambdaARN"]["Fn::GetAtt"][0]
        mapping = props(serverless_apps[app])["Location"]["ApplicationId"]["Fn::FindInMap"][0]
        assert f"SecretsManagerRDSMySQLRotation{kind}" in json.dumps(mappings[mapping]), secret
    # And the app user's first rotation waits for the migration that creates the user
    migration = next(iter(template.find_resources("Custom::ReelayMigration")))
    assert migration in schedules[app_secret]["DependsOn"]


def test_only_the_client_group_may_reach_mysql(synthesized, stacks):
    # Given the data stack
    template = synthesized.template(stacks.data)
    ingress = [props(r) for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()]
    # Then every ingress to the database comes from a security group, never a CIDR
    assert ingress
    assert all("SourceSecurityGroupId" in rule and "CidrIp" not in rule for rule in ingress)


def test_migration_custom_resource_reruns_when_migrations_change(synthesized, stacks, config):
    # Given the data stack
    template = synthesized.template(stacks.data)
    database = stacks.data.database
    master_secret = _logical_id(stacks.data, database.master_secret)
    app_secret = _logical_id(stacks.data, database.app_secret)
    # Then a custom resource runs the migration with the hash of the migration files and the app user
    template.has_resource_properties(
        "Custom::ReelayMigration",
        {"MigrationsHash": migrations_hash(), "DbName": config.db_name, "AppUser": "reelay_app"},
    )
    # And the migration function is the migrate handler, in the VPC, migrating as the master and
    # given the app secret to create that user
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.migrate.handler.lambda_handler",
            "Runtime": "python3.11",
            "VpcConfig": Match.object_like({"SecurityGroupIds": Match.any_value()}),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "REELAY_DB_SECRET_ARN": {"Ref": master_secret},
                        "REELAY_APP_DB_SECRET_ARN": {"Ref": app_secret},
                        "REELAY_DB_TLS": "true",
                    }
                )
            },
        },
    )
    # And it may read both secrets
    migrate_role = _logical_id(stacks.data, database.migrate_function.role)
    policies = [
        props(p)["PolicyDocument"]
        for p in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": migrate_role} in props(p)["Roles"]
    ]
    assert _secrets_readable(policies) == {master_secret, app_secret}


def _secrets_readable(policy_documents) -> set[str]:
    """The logical ids or imports of the secrets these policies allow GetSecretValue on."""
    found = set()
    for document in policy_documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Effect"] == "Allow" and "secretsmanager:GetSecretValue" in actions:
                resources = statement["Resource"]
                for resource in resources if isinstance(resources, list) else [resources]:
                    found.add(resource.get("Ref") or resource.get("Fn::ImportValue") or json.dumps(resource))
    return found


def test_the_platform_connects_as_the_app_user_never_the_master(synthesized, stacks):
    # Given the stacks whose compute talks to the catalogue
    database = stacks.data.database
    app_secret = _logical_id(stacks.data, database.app_secret)
    master_secret = _logical_id(stacks.data, database.master_secret)
    consumers = {"api": stacks.api, "queue": stacks.queue, "transcoder": stacks.transcoder}
    handlers, task_envs, readable = set(), [], set()
    for name, stack in consumers.items():
        template = synthesized.template(stack)
        text = json.dumps(template.to_json())
        # Then none of them even mentions the master secret
        assert master_secret not in text, name
        for fn in template.find_resources("AWS::Lambda::Function").values():
            env = props(fn).get("Environment", {}).get("Variables", {})
            if "REELAY_DB_SECRET_ARN" in env:
                handlers.add(props(fn)["Handler"])
                assert app_secret in json.dumps(env["REELAY_DB_SECRET_ARN"]), props(fn)["Handler"]
        for task in template.find_resources("AWS::ECS::TaskDefinition").values():
            for container in props(task)["ContainerDefinitions"]:
                env = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
                if "REELAY_DB_SECRET_ARN" in env:
                    task_envs.append(env["REELAY_DB_SECRET_ARN"])
        readable |= _secrets_readable(
            props(p)["PolicyDocument"] for p in template.find_resources("AWS::IAM::Policy").values()
        )
    # And the API, upload-event, dead-job, outbox-sweep and stuck-sweep Lambdas and the worker get the
    # app secret and may read it
    assert handlers == {
        "lambdas.api.handler.lambda_handler",
        "lambdas.upload_events.handler.lambda_handler",
        "lambdas.dead_jobs.handler.lambda_handler",
        "lambdas.outbox_sweep.handler.lambda_handler",
        "lambdas.stuck_sweep.handler.lambda_handler",
    }
    assert task_envs and all(app_secret in json.dumps(v) for v in task_envs)
    # (the API also reads its own StreamSecretKeys secret, which seals camera passwords, and the
    # PlaybackSigningKey, which signs private playback: not database ones)
    database_secrets = {
        secret
        for secret in readable
        if "StreamSecretKeys" not in secret and "PlaybackSigningKey" not in secret
    }
    assert database_secrets and all(app_secret in secret for secret in database_secrets), readable


def test_the_master_secret_stays_exported_for_stacks_that_imported_it(synthesized, stacks):
    # Given the data stack (stacks deployed before the app user imported the master secret's ARN)
    outputs = synthesized.template(stacks.data).to_json()["Outputs"]
    master_secret = _logical_id(stacks.data, stacks.data.database.master_secret)
    # Then the master secret's export keeps the name those stacks import (as synthesized before the
    # app user existed), so CloudFormation can update them
    exported = [o for o in outputs.values() if o["Value"] == {"Ref": master_secret}]
    assert [o["Export"]["Name"] for o in exported] == [
        f"{stacks.data.stack_name}:ExportsOutputRef{master_secret}3ACA6555"
    ]


def test_migrations_hash_changes_with_a_new_or_edited_migration(tmp_path):
    # Given a tree of migrations
    folder = tmp_path / "reelay" / "catalogue" / "migrations"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_text("CREATE TABLE a (id INT);")
    first = migrations_hash(tmp_path)
    # When a migration is added, the hash changes
    (folder / "0002_more.sql").write_text("ALTER TABLE a ADD b INT;")
    second = migrations_hash(tmp_path)
    assert second != first
    # When one is edited, it changes again; unrelated files do not count
    (folder / "0002_more.sql").write_text("ALTER TABLE a ADD c INT;")
    third = migrations_hash(tmp_path)
    assert third != second
    (folder / "README.md").write_text("notes")
    assert migrations_hash(tmp_path) == third


def test_production_database_settings_follow_config(tmp_path):
    # Given the database construct alone, configured multi-AZ with TLS required
    config = ReelayConfig.from_context(
        {"db_multi_az": True, "db_require_tls": True, "mysql_version": "8.0.40", "reserve_concurrency": False}
    )
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Probe")
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ],
    )
    endpoint = vpc.add_interface_endpoint("Sm", service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER)
    CatalogueDatabase(stack, "Db", config=config, vpc=vpc, secrets_endpoint=endpoint)
    # When it synthesizes
    template = Template.from_stack(stack)
    # Then the instance is multi-AZ on that version, TLS is required, and no concurrency is reserved
    template.has_resource_properties("AWS::RDS::DBInstance", {"MultiAZ": True, "EngineVersion": "8.0.40"})
    template.has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Parameters": {"require_secure_transport": "ON"}}
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "lambdas.migrate.handler.lambda_handler", "ReservedConcurrentExecutions": Match.absent()},
    )
