"""The demo: a simulated loan model that writes traffic through the real ingestion path, and a stand-in
model service for the docker-compose stack."""
