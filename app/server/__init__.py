"""The process layer: Gunicorn's hooks and worker class, uvicorn's protocols, the merged
metrics endpoint. Imports nothing of Django (Gunicorn loads it before the app)."""
