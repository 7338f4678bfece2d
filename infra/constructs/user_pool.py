"""Identity: the Cognito user pool people sign up to, and the API's public app client."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from infra.constants import MODERATORS_GROUP, OPERATORS_GROUP
from infra.nag import acknowledge


class UserPool(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: str, email: cognito.UserPoolEmail | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        self.pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=f"reelay-{stage}-users",
            self_sign_up_enabled=True,
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            user_verification=cognito.UserVerificationConfig(
                email_style=cognito.VerificationEmailStyle.CODE,
                email_subject="Your Reelay sign-up code",
                email_body="Your Reelay sign-up code is {####}",
            ),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            removal_policy=RemovalPolicy.RETAIN,
            # None: Cognito's default sender, 50 emails a day (ses_email below lifts that).
            email=email,
        )
        self.client = self.pool.add_client(
            "ApiClient",
            user_pool_client_name=f"reelay-{stage}-api",
            generate_secret=False,  # the API Lambda and browsers call Cognito without a secret
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            prevent_user_existence_errors=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            enable_token_revocation=True,
        )
        # Operators manage live relay streams; the ID token lists the group in cognito:groups.
        # Make someone an operator with: aws cognito-idp admin-add-user-to-group --group-name operators ...
        self.operators = self.pool.add_group(
            "Operators",
            group_name=OPERATORS_GROUP,
            description="Manage live relay streams (the /streams API)",
        )
        # Moderators unpublish and delete any video, each action audited (the /moderation API).
        self.moderators = self.pool.add_group(
            "Moderators",
            group_name=MODERATORS_GROUP,
            description="Unpublish and delete any video, audited (the /moderation API)",
        )
        acknowledge(
            self.pool,
            "AwsSolutions-COG2",
            "MFA is optional (TOTP): the API's password login does not yet handle MFA challenges.",
        )
        acknowledge(
            self.pool,
            "AwsSolutions-COG3",
            "Threat protection needs the Cognito Plus plan; the strong password policy applies meanwhile.",
        )
        acknowledge(
            self.pool,
            "AwsSolutions-COG8",
            "The Essentials plan covers email sign-up and password login; Plus is a per-deployment upgrade.",
        )


def ses_email(from_email: str | None, *, from_name: str, region: str | None) -> cognito.UserPoolEmail | None:
    """Cognito email through SES from a verified sender, or None for Cognito's default (50 a day)."""
    if from_email is None:
        return None
    return cognito.UserPoolEmail.with_ses(
        from_email=from_email, from_name=from_name, ses_region=region, ses_verified_domain=None
    )
