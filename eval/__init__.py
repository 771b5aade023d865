"""The eval harness: hand-written questions scored against the pipeline, so changes are measured, not guessed."""
