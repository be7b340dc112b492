"""The API's resources, one module per area; routes in api/urls.py."""
