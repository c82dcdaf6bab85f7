"""Helpers of the test suite (not tests): servers, clients, layers, frames."""
