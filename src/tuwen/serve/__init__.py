"""Serve: the FastAPI app (:mod:`tuwen.serve.app`), its route groups (:mod:`tuwen.serve.routes`) and its web page
(``serve/web``)."""
