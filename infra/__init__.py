"""The Reelay CDK app: thin stacks composing one construct per capability."""
