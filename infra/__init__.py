"""Local single-node stack for development and CI: fetch, start, health-check and stop services.

Kafka (KRaft) and Cassandra run as plain JVM processes from Maven Central jars; the schema registry
and the feature API are this project's own Python processes. Everything binds to loopback and keeps
its data and logs under one state folder; downloaded jars live in a cache outside the repository.
"""
