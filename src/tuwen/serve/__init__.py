"""Serve: the FastAPI app (:mod:`tuwen.serve.app`) and its web page (``serve/web``)."""
