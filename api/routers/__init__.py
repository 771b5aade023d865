"""The API's routes, one module per resource. create_app includes ROUTERS in this order (the order of /docs).

Writes need no per-route check: api.clients.WriteKey refuses a write to /documents without the API key from
the request head, before a route (or its body) is reached.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.routers import ask, chat_edits, conversations, documents, feedback, health, jobs, page

ROUTERS: tuple[APIRouter, ...] = (page.router, health.router, ask.router, chat_edits.router, conversations.router,
                                  feedback.router, documents.router, jobs.router)
