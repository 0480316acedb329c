"""The API's route groups, one :class:`fastapi.APIRouter` per module; :func:`tuwen.serve.app.create_app` includes
them in a fixed order (the order of the OpenAPI schema)."""
