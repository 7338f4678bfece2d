"""The catalogue database: RDS MySQL, a deploy-time migration, and two rotated secrets.

The master secret is for the migration alone. Everything else connects as the application user
(row access to the catalogue only), whose secret rotates with the alternating-users strategy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.bundling import REPO_ROOT
from infra.config import ReelayConfig
from infra.constants import MIGRATE_HANDLER, MIGRATIONS_GLOB
from infra.constructs.function import ReelayFunction
from infra.nag import acknowledge, acknowledge_provider

MASTER_DB_USER = "reelay_admin"
# Rotation alternates this user and APP_DB_USER + "_clone" (reelay.catalogue.users.rotation_pair).
APP_DB_USER = "reelay_app"


def migrations_hash(root: Path = REPO_ROOT) -> str:
    """Changes whenever a migration file is added or edited, so the custom resource re-runs."""
    digest = hashlib.sha256()
    for path in sorted(root.glob(MIGRATIONS_GLOB)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class CatalogueDatabase(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ReelayConfig,
        vpc: ec2.IVpc,
        secrets_endpoint: ec2.IInterfaceVpcEndpoint,
    ) -> None:
        super().__init__(scope, construct_id)
        # Compute that talks to MySQL joins this group; the database admits only it.
        self.client_security_group = ec2.SecurityGroup(
            self, "ClientSecurityGroup", vpc=vpc, description="Reelay compute allowed to reach MySQL"
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=rds.DatabaseInstanceEngine.mysql(version=config.mysql_engine_version),
            instance_type=ec2.InstanceType(config.db_instance_type),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            credentials=rds.Credentials.from_generated_secret(MASTER_DB_USER),
            database_name=config.db_name,
            allocated_storage=config.db_allocated_storage_gib,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            multi_az=config.db_multi_az,
            backup_retention=Duration.days(config.db_backup_retention_days),
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            iam_authentication=True,
            auto_minor_version_upgrade=False,  # the engine version is pinned on purpose
            cloudwatch_logs_exports=["error", "general", "slowquery"],
            cloudwatch_logs_retention=config.log_retention,
            enable_performance_insights=False,
            parameters={"require_secure_transport": "ON" if config.db_require_tls else "OFF"},
        )
        self.instance.connections.allow_default_port_from(
            self.client_security_group, "Reelay compute to MySQL"
        )
        assert self.instance.secret is not None  # from_generated_secret always makes one
        self.master_secret: secretsmanager.ISecret = self.instance.secret
        rotation_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.rotation = self.instance.add_rotation_single_user(
            automatically_after=Duration.days(30), vpc_subnets=rotation_subnets, endpoint=secrets_endpoint
        )
        # The attachment adds host, port and engine, which the rotation function and the app need.
        self.app_secret: secretsmanager.ISecret = rds.DatabaseSecret(
            self, "AppSecret", username=APP_DB_USER, master_secret=self.master_secret
        ).attach(self.instance)
        # Rotation logs in as the master to give NAME / NAME_clone a new password in turn: the
        # previous credentials keep working until the next rotation, so connections never drop.
        self.app_rotation = self.instance.add_rotation_multi_user(
            "AppUser",
            secret=self.app_secret,
            automatically_after=Duration.days(30),
            vpc_subnets=rotation_subnets,
            endpoint=secrets_endpoint,
        )
        acknowledge(
            self.instance,
            "AwsSolutions-RDS11",
            "MySQL keeps its default port: it sits in isolated subnets and admits only the client group.",
        )
        if not config.db_multi_az:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS3",
                "Multi-AZ is off for this stage by config (db_multi_az); production stages turn it on.",
            )
        self._migration(config, vpc)

    @property
    def secret(self) -> secretsmanager.ISecret:
        """The secret the platform's compute connects with: the application user's, never the master."""
        return self.app_secret

    def _migration(self, config: ReelayConfig, vpc: ec2.IVpc) -> None:
        migrate = ReelayFunction(
            self,
            "Migrate",
            handler=MIGRATE_HANDLER,
            service="migrate",
            description="Applies the catalogue's versioned SQL migrations at deploy time",
            environment={
                "REELAY_DB_SECRET_ARN": self.master_secret.secret_arn,
                "REELAY_APP_DB_SECRET_ARN": self.app_secret.secret_arn,
                "REELAY_DB_NAME": config.db_name,
                "REELAY_DB_TLS": "true" if config.db_require_tls else "false",
            },
            vpc=vpc,
            security_groups=[self.client_security_group],
            log_retention=config.log_retention,
            timeout=Duration.minutes(5),
            reserved_concurrency=config.reserved(1),  # migrations never run concurrently
        )
        self.migrate_function = migrate.function
        self.master_secret.grant_read(migrate.function)
        self.app_secret.grant_read(migrate.function)
        provider_logs = logs.LogGroup(
            self,
            "MigrationProviderLogs",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        provider = cr.Provider(
            self, "MigrationProvider", on_event_handler=migrate.function, log_group=provider_logs
        )
        self.migration = CustomResource(
            self,
            "Migration",
            service_token=provider.service_token,
            resource_type="Custom::ReelayMigration",
            # AppUser: a stack that predates the application user re-runs the migration to create it.
            properties={
                "MigrationsHash": migrations_hash(),
                "DbName": config.db_name,
                "AppUser": APP_DB_USER,
            },
        )
        self.migration.node.add_dependency(self.instance)
        # The first rotation runs as soon as its schedule exists and must find the user already there.
        self.app_secret.node.find_child("RotationSchedule").node.add_dependency(self.migration)
        acknowledge_provider(provider, migrate.function, "migration")
        self._provider = provider
