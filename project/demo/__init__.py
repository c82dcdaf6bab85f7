"""The demo app: chat rooms with presence, notifications and a staff dashboard."""
