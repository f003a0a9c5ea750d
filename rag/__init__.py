"""Django-free RAG core: frozen dataclasses in, frozen dataclasses out."""
