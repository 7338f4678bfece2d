"""Reelay domain core: shared by the Lambda handlers, the ECS container and the local platform.

Nothing in this package above ``reelay.adapters``, ``reelay.catalogue.mysql`` and
``reelay.storage`` touches boto3 or PyMySQL directly.
"""
