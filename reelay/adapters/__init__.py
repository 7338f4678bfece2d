"""Adapters at the edge: AWS clients, the SQS job queue, SNS events and Cognito identity.

Only this package and ``reelay.storage`` (and the MySQL catalogue) touch boto3.
"""
