"""HTTP API and chat page for the news QA service."""
