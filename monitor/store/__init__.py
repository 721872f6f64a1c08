"""The store: tables, engines and migrations, shared queries, human alert actions and API keys."""
