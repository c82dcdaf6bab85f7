"""The demo Django project: site configuration in `config`, the demo app in `demo`."""
