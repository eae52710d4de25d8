"""gunicorn entrypoint: ``gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app``."""

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.platform.logs import setup_logging

settings = GatewaySettings()
setup_logging(settings.log_level, service="gateway")
app = create_app(settings)
