"""What the tests (tests/) and the benchmarks (bench/) both need, and nothing else:
private redis-server and ASGI server (daphne, uvicorn, hypercorn) processes on free
loopback ports, and the WebSocket frame a client sends. It imports neither tests
nor bench; both import it."""
