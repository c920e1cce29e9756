"""Clients of the services around the stream: Kafka (admin, publisher), Redis (claim check, results,
inference cache) and the alert webhook.
"""
