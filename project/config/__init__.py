"""Site configuration of the demo: settings, HTTP URLs and the ASGI application."""
