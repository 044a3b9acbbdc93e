"""The central server: receives each workstation's feedback and audit entries (FastAPI + SQLAlchemy)."""
