"""Deployment helpers: a real Apache Kafka cluster for development and tests (deploy.kafka)."""
