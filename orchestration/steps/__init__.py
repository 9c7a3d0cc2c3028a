"""The pipeline's steps as plain functions: callable without Dagster."""
